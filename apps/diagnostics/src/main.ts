import 'reflect-metadata';
import { ConfigError } from '@mandate/config';
import { runService } from '@mandate/bus';
import { diagnosticsService } from './diagnostics.module.js';
import { loadDiagnosticsConfig } from './config.js';

try {
  await runService(diagnosticsService, loadDiagnosticsConfig(), { handleSignals: true });
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`diagnostics: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}
