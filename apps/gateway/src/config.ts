import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { DEFAULT_DECISION_LOG_RETENTION_DAYS, DEFAULT_WAT_ISSUER } from '@mandate/contracts';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const gatewayEnvSchema = baseEnvSchema.safeExtend({
  /** The MCP endpoints (`/mcp/<tenant>/<gateway>`) and their protected-resource metadata; 0 turns HTTP off. */
  GATEWAY_HTTP_PORT: int(0, 65_535, 4494),
  GATEWAY_HTTP_HOST: z.string().default('127.0.0.1'),
  /**
   * Where MCP clients reach this service (behind a proxy: the public origin). A gateway's resource
   * URL, which its tokens must name as audience, is `<GATEWAY_PUBLIC_URL>/mcp/<tenant>/<gateway>`.
   */
  GATEWAY_PUBLIC_URL: z.url().default('http://127.0.0.1:4494'),
  /**
   * Browser origins allowed to call the MCP endpoints (comma-separated), besides the gateway's own.
   * A request with any other `Origin` is refused: the Streamable HTTP transport's defence against
   * DNS rebinding. Clients that are not browsers send no `Origin` and are not affected.
   */
  GATEWAY_ALLOWED_ORIGINS: z.preprocess(
    // A string from the environment; already a list when a parsed environment is parsed again.
    (value) => (typeof value === 'string' ? value.split(',').map((origin) => origin.trim()).filter(Boolean) : (value ?? [])),
    z.array(z.url().transform((origin) => new URL(origin).origin)),
  ),
  /** The authorizer's WAT issuer: the audience of the client assertions gateways sign. */
  WAT_ISSUER: z.string().min(1).max(255).default(DEFAULT_WAT_ISSUER),
  /** Larger MCP request bodies are refused (413) before they are parsed. */
  GATEWAY_MAX_REQUEST_BYTES: int(1_024, 64 * 1024 * 1024, 1024 * 1024),
  /** Larger results from a target are refused, as a tool error. */
  GATEWAY_MAX_RESULT_BYTES: int(1_024, 256 * 1024 * 1024, 4 * 1024 * 1024),
  /** An MCP session unused this long is closed. */
  GATEWAY_SESSION_IDLE_SECONDS: int(10, 86_400, 1_800),
  /** How often targets marked unreachable (by a failed sync or call) are synced again; 0: only by `target sync`. */
  GATEWAY_UNREACHABLE_RETRY_SECONDS: int(0, 3_600, 30),
  /** At most this many MCP sessions per replica; the least recently used goes first. */
  GATEWAY_MAX_SESSIONS: int(1, 1_000_000, 10_000),
  /** How long a checked inbound token is trusted without asking the authorizer again (never past its expiry). */
  GATEWAY_PRINCIPAL_CACHE_SECONDS: int(0, 3_600, 60),
  /**
   * Key of the salted digest of each call's arguments in the audit trail (base64url, 32 bytes or
   * more). Replicas must share it for digests to compare; absent, each process makes its own.
   */
  GATEWAY_AUDIT_SALT: z.string().regex(/^[A-Za-z0-9_-]{43,}$/, 'must be at least 32 bytes, base64url').optional(),
  MANDATE_MASTER_KEYS: z.string().optional(),
  MANDATE_MASTER_KEY_FILE: z.string().optional(),
  /** How long a call's receipt is good for (its `exp`); a retired receipt key stays in the JWKS at least this long. */
  GATEWAY_RECEIPT_TTL_SECONDS: int(10, 3_600, 300),
  /** The receipt signing keys' algorithm (a new key takes it at the next rotation). */
  GATEWAY_RECEIPT_SIGNING_ALG: z.enum(['EdDSA', 'ES256']).default('EdDSA'),
  /** A receipt key signs this long before the next one takes over. */
  GATEWAY_RECEIPT_KEY_ROTATION_HOURS: z.coerce.number().min(1).max(24 * 90).default(24),
  /** A new receipt key is in the JWKS this long before it signs, so targets' cached key sets have it. */
  GATEWAY_RECEIPT_KEY_ACTIVATION_DELAY_SECONDS: int(0, 3_600, 300),
  /**
   * How many days the decision log keeps each policy decision's sealed request (for `policy
   * replay` and `policy explain`); 0 writes none. Every replica should say the same: the last one
   * started sets the stream's age limit.
   */
  GATEWAY_DECISION_LOG_RETENTION_DAYS: int(0, 3_650, DEFAULT_DECISION_LOG_RETENTION_DAYS),
  /** The decision log's own key ring (JSON, as `MANDATE_MASTER_KEYS`), shared with the policy service only. */
  MANDATE_DECISION_LOG_KEYS: z.string().optional(),
  MANDATE_DECISION_LOG_KEY_FILE: z.string().optional(),
  /**
   * Where people reach the consent service (its public origin): a call held for approval names
   * its approvals page, `<CONSENT_PUBLIC_URL>/approvals/<id>?tenant=<tenant>`. Unset, the held
   * call's message names the CLI instead.
   */
  CONSENT_PUBLIC_URL: z.url().transform((url) => url.replace(/\/$/, '')).optional(),
  /**
   * How long a call held for approval waits for the decision (woken by the decision event,
   * sending MCP progress notifications if the client asked for them) before it answers
   * `approval_required`; 0 answers at once. While it waits, the client's request stays open.
   */
  GATEWAY_APPROVAL_WAIT_SECONDS: int(0, 300, 0),
});

export type GatewayEnv = z.output<typeof gatewayEnvSchema>;
