import { baseEnvSchema } from '@mandate/config';

/** Diagnostics needs nothing beyond the settings every service shares. */
export const diagnosticsEnvSchema = baseEnvSchema;
