import { z } from 'zod';
import { baseEnvSchema, parseEnv } from '@mandate/config';

export const consentEnvSchema = baseEnvSchema.safeExtend({
  /** The consent pages and the provider callback; 0 turns HTTP off (NATS only). */
  CONSENT_HTTP_PORT: z.coerce.number().int().min(0).max(65_535).default(4490),
  CONSENT_HTTP_HOST: z.string().default('127.0.0.1'),
  /**
   * Where browsers reach this service (behind a proxy: the public origin). The provider redirect
   * URI is exactly `<CONSENT_PUBLIC_URL>/callback`; https makes cookies `Secure` and `__Host-`.
   */
  CONSENT_PUBLIC_URL: z.url().default('http://127.0.0.1:4490'),
  /**
   * Key of the CSRF tokens (HMAC of the browser cookie), base64url, 32 bytes or more. Replicas
   * must share it; absent, each process makes its own (fine for one replica).
   */
  CONSENT_CSRF_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43,}$/, 'must be at least 32 bytes, base64url')
    .optional(),
  /** How long a "this time only" grant lets the agent fetch its token. */
  CONSENT_ONCE_GRANT_SECONDS: z.coerce.number().int().min(30).max(3_600).default(600),
});

export type ConsentEnv = z.output<typeof consentEnvSchema>;

export function loadConsentConfig(env: NodeJS.ProcessEnv = process.env): ConsentEnv {
  return parseEnv(consentEnvSchema, env);
}
