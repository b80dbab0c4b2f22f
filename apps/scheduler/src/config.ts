import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { DEFAULT_WAT_ISSUER } from '@mandate/contracts';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const schedulerEnvSchema = baseEnvSchema.safeExtend({
  /** The authorizer's WAT issuer: the audience of the client assertions jobs sign. */
  WAT_ISSUER: z.string().min(1).max(255).default(DEFAULT_WAT_ISSUER),
  /** How often each replica looks for due fires and retries; 0 disables the timer (tests drive `tick`). */
  SCHEDULER_TICK_MS: int(0, 60_000, 1_000),
  /** A fire found later than this was missed (everything was down) and follows the job's missed-fire policy. */
  SCHEDULER_MISFIRE_GRACE_SECONDS: int(1, 86_400, 60),
  /** An attempt not finished within this is presumed dead and taken over; keep it above the HTTP timeout. */
  SCHEDULER_RUN_LEASE_SECONDS: int(5, 3_600, 120),
  /** Timeout of one HTTP action call. */
  SCHEDULER_HTTP_TIMEOUT_MS: int(100, 600_000, 30_000),
  /** Run records are kept this long. */
  SCHEDULER_RUN_RETENTION_DAYS: int(1, 3_650, 30),
  /** Unacknowledged trigger events come back after this. */
  SCHEDULER_TRIGGER_ACK_WAIT_SECONDS: int(1, 3_600, 60),
  MANDATE_MASTER_KEYS: z.string().optional(),
  MANDATE_MASTER_KEY_FILE: z.string().optional(),
});

export type SchedulerEnv = z.output<typeof schedulerEnvSchema>;
