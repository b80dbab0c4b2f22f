import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { DEFAULT_WAT_ISSUER } from '@mandate/contracts';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const vaultEnvSchema = baseEnvSchema.safeExtend({
  /** The issuer of the WATs the vault accepts (the authorizer's WAT_ISSUER). */
  WAT_ISSUER: z.string().min(1).max(255).default(DEFAULT_WAT_ISSUER),
  /** Timeout of every call to a provider (discovery, token, revocation). */
  VAULT_PROVIDER_TIMEOUT_MS: int(100, 60_000, 10_000),
  /** Per workload and replica: sustained requests per second, and the burst above it. */
  VAULT_RATE_LIMIT_PER_SECOND: int(1, 1_000_000, 200),
  VAULT_RATE_LIMIT_BURST: int(1, 1_000_000, 1_000),
  /** Tokens are treated as stale this long before they expire. */
  VAULT_REFRESH_MARGIN_SECONDS: int(0, 3_600, 60),
  /** Recently used user tokens expiring within this are refreshed in the background. */
  VAULT_PROACTIVE_REFRESH_SECONDS: int(0, 3_600, 120),
  /** A refresh lease not released within this is taken over (its holder presumed dead). */
  VAULT_LEASE_TTL_SECONDS: int(1, 600, 15),
  /** How long a caller waits for another replica's refresh. */
  VAULT_REFRESH_WAIT_MS: int(100, 120_000, 10_000),
  /** Where the consent service's pages are; authorization URLs point there. */
  CONSENT_BASE_URL: z.url().default('http://127.0.0.1:4490'),
  MANDATE_MASTER_KEYS: z.string().optional(),
  MANDATE_MASTER_KEY_FILE: z.string().optional(),
});

export type VaultEnv = z.output<typeof vaultEnvSchema>;
