import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { vaultService } from './vault.module.js';

await runServiceMain(vaultService);
