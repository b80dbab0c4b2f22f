import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { diagnosticsService } from './diagnostics.module.js';

await runServiceMain(diagnosticsService);
