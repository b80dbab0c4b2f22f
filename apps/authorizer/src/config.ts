import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { DEFAULT_WAT_ISSUER } from '@mandate/contracts';

const seconds = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const authorizerEnvSchema = baseEnvSchema.safeExtend({
  /** The `iss` of every WAT and the `aud` client assertions must carry. */
  WAT_ISSUER: z.string().min(1).max(255).default(DEFAULT_WAT_ISSUER),
  /** WAT lifetime; a WAT for a user JWT never outlives that JWT. */
  WAT_TTL_SECONDS: seconds(30, 3_600, 900),
  WAT_SIGNING_ALG: z.enum(['EdDSA', 'ES256']).default('EdDSA'),
  /** A signing key signs this long before the next one takes over. */
  WAT_KEY_ROTATION_HOURS: z.coerce.number().min(1).max(24 * 90).default(24),
  /** A new key is published this long before it signs, so every verifier's cached JWKS has it. */
  WAT_KEY_ACTIVATION_DELAY_SECONDS: seconds(0, 3_600, 300),
  /** Clock skew accepted on inbound tokens and client assertions (at most 60 s). */
  CLOCK_TOLERANCE_SECONDS: seconds(0, 60, 30),
  IDP_FETCH_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(5_000),
  /** After a JWKS refetch for an unknown kid, wait this long before another. */
  JWKS_COOLDOWN_SECONDS: seconds(0, 3_600, 30),
  /** How long an IdP's discovery document is trusted before it is fetched again. */
  IDP_DISCOVERY_TTL_SECONDS: seconds(0, 86_400, 3_600),
  /** Allowed inbound tokens are remembered by hash until they expire (0 turns this off). */
  VERIFIED_TOKEN_CACHE_SIZE: z.coerce.number().int().min(0).max(1_000_000).default(10_000),
  /** A workload read from the directory is reused this long (changes also evict it at once). */
  WORKLOAD_CACHE_TTL_MS: z.coerce.number().int().min(0).max(600_000).default(30_000),
  /** The HTTP JWKS endpoint (`/.well-known/jwks.json`); port 0 turns it off. */
  AUTHORIZER_HTTP_PORT: z.coerce.number().int().min(0).max(65_535).default(4480),
  AUTHORIZER_HTTP_HOST: z.string().default('127.0.0.1'),
  MANDATE_MASTER_KEYS: z.string().optional(),
  MANDATE_MASTER_KEY_FILE: z.string().optional(),
});

export type AuthorizerEnv = z.output<typeof authorizerEnvSchema>;
