import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { directoryService } from './directory.module.js';

await runServiceMain(directoryService);
