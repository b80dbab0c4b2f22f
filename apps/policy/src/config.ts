import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';

export const policyEnvSchema = baseEnvSchema.safeExtend({
  /**
   * The decision log's key ring (JSON, as `MANDATE_MASTER_KEYS`; the gateways seal with it), to
   * open recorded requests for replay and explain. Required in production; the embedded default
   * generates one under the data dir.
   */
  MANDATE_DECISION_LOG_KEYS: z.string().optional(),
  MANDATE_DECISION_LOG_KEY_FILE: z.string().optional(),
  /** How often lapsed approvals are moved to expired (audited and announced) though nobody reads them; 0 never. */
  POLICY_APPROVAL_SWEEP_SECONDS: z.coerce.number().int().min(0).max(3_600).default(5),
});

export type PolicyEnv = z.output<typeof policyEnvSchema>;
