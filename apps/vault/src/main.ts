import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { vaultService } from './vault.module.js';
import { loadVaultConfig } from './config.js';

await runServiceMain(vaultService, loadVaultConfig);
