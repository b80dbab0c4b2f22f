import { baseEnvSchema } from '@mandate/config';

export const policyEnvSchema = baseEnvSchema;
