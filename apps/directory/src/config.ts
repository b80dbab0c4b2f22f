import { baseEnvSchema, parseEnv } from '@mandate/config';

/** The directory needs nothing beyond the settings every service shares. */
export const directoryEnvSchema = baseEnvSchema;

export function loadDirectoryConfig(env: NodeJS.ProcessEnv = process.env) {
  return parseEnv(directoryEnvSchema, env);
}
