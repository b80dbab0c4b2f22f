import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { directoryService } from './directory.module.js';
import { loadDirectoryConfig } from './config.js';

await runServiceMain(directoryService, loadDirectoryConfig);
