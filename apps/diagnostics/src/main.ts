import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { diagnosticsService } from './diagnostics.module.js';
import { loadDiagnosticsConfig } from './config.js';

await runServiceMain(diagnosticsService, loadDiagnosticsConfig);
