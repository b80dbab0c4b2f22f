import { baseEnvSchema, parseEnv } from '@mandate/config';

/** Diagnostics needs nothing beyond the settings every service shares. */
export const diagnosticsEnvSchema = baseEnvSchema;

export function loadDiagnosticsConfig(env: NodeJS.ProcessEnv = process.env) {
  return parseEnv(diagnosticsEnvSchema, env);
}
