import { baseEnvSchema } from '@mandate/config';

/** The directory needs nothing beyond the settings every service shares. */
export const directoryEnvSchema = baseEnvSchema;
