import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';

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
  /**
   * The consent service's client at each tenant IdP, for signing people in before they approve
   * (authorization code + PKCE, redirect URI `<CONSENT_PUBLIC_URL>/login/callback`). Without a
   * secret it is a public client.
   */
  CONSENT_LOGIN_CLIENT_ID: z.string().min(1).max(255).default('mandate-consent'),
  CONSENT_LOGIN_CLIENT_SECRET: z.string().min(1).max(1024).optional(),
  /** How long a person stays signed in to the consent pages in one browser. */
  CONSENT_SIGN_IN_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3_600),
  /** How long an unused "this time only" grant waits for the agent's one token release. */
  CONSENT_ONCE_GRANT_SECONDS: z.coerce.number().int().min(30).max(3_600).default(600),
});

export type ConsentEnv = z.output<typeof consentEnvSchema>;
