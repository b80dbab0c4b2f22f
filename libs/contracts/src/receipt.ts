import { z } from 'zod';
import type { ErrorCode } from './errors.js';
import { defineEvent } from './event.js';
import { GATEWAY_SERVICE } from './gateway.js';
import { policyModeSchema } from './policy.js';

/*
 * A tool-call receipt: the compact JWS a gateway attaches to every call it permits, so the target
 * can check, offline and in any language, that this exact call was authorized: verify the JWS with
 * the gateway's published JWKS, then recompute `call_digest` (RFC 8785 canonical JSON of the call,
 * SHA-256, base64url: `callDigest` in @mandate/tool-policy) from the arguments it was sent.
 */

/** The JWS `typ` header of a receipt (RFC 8725 §3.11: explicit typing, so no other JWT passes as one). */
export const RECEIPT_TYPE = 'mandate-receipt+jwt';
/** Where an MCP target finds it: `params._meta["io.mandate/receipt"]` of the `tools/call` request. */
export const RECEIPT_META_KEY = 'io.mandate/receipt';
/** Where an HTTP (OpenAPI) target finds it. */
export const RECEIPT_HEADER = 'Mandate-Receipt';
/** The gateway listener's JWKS of receipt keys, also named as `jwks_uri` in each gateway's RFC 9728 metadata. */
export const RECEIPT_JWKS_PATH = '/.well-known/jwks.json';

/** The policy set that decided, when the gateway has one attached. */
export const receiptPolicySchema = z.object({
  /** The policy set's name. */
  set: z.string().min(1).max(128),
  version: z.number().int().positive(),
  /** The version's content hash (SHA-256), as the audit record carries it. */
  hash: z.string().min(1).max(128),
  /** `log-only`: the set was evaluated and not enforced (its own decision is `decision`). */
  mode: policyModeSchema,
  decision: z.enum(['allow', 'deny']),
  /** The ids of the policies that determined the decision. */
  determining: z.array(z.string().max(256)).max(64),
});

export const receiptClaimsSchema = z.object({
  /** The gateway's resource URL, `<GATEWAY_PUBLIC_URL>/mcp/<tenant>/<gateway>`. */
  iss: z.string().min(1).max(2048),
  /** The target as the gateway calls it: an MCP server's URL, an OpenAPI target's base URL. */
  aud: z.string().min(1).max(2048),
  iat: z.number().int(),
  exp: z.number().int(),
  jti: z.string().min(1).max(128),
  /** The user's subject at their IdP; with their issuer in `sub_id` (RFC 9493, format `iss_sub`). */
  sub: z.string().min(1).max(255),
  sub_id: z.object({ format: z.literal('iss_sub'), iss: z.string().min(1).max(2048), sub: z.string().min(1).max(255) }),
  /** The agent: the inbound token's client, when it names one. */
  client_id: z.string().min(1).max(255).optional(),
  tenant: z.string().min(1).max(63),
  gateway: z.string().min(1).max(63),
  /** The tool's gateway name, `<target>___<tool>`. */
  tool: z.string().min(1).max(255),
  call_digest: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  decision: z.literal('allow'),
  policy: receiptPolicySchema.optional(),
  /** The approval a person gave to this held call, when it needed one. */
  approval: z.string().min(1).max(128).optional(),
});

export type ReceiptClaims = z.output<typeof receiptClaimsSchema>;
export type ReceiptPolicy = z.output<typeof receiptPolicySchema>;

/** Deployment-wide (published for the `system` tenant): every gateway replica reloads its receipt keys. */
export const receiptKeysChangedEvent = defineEvent({
  service: GATEWAY_SERVICE,
  name: 'receipt-keys-changed',
  description: 'A receipt signing key was added: gateway replicas reload the ring, targets refetch the JWKS when they meet its kid.',
  data: z.object({ kid: z.string().min(1).max(128) }),
});

/** Why a target's check of a receipt failed (`details.reason` of the verifier's `MandateError`). */
export const RECEIPT_REJECTIONS = {
  malformed: { code: 'unauthenticated', message: 'the receipt is not a compact JWS of a Mandate tool-call receipt' },
  unknown_key: { code: 'unauthenticated', message: "the receipt is signed with a key the gateway's JWKS does not hold (unknown, or retired and removed)" },
  bad_signature: { code: 'unauthenticated', message: 'the receipt signature does not verify' },
  expired: { code: 'unauthenticated', message: 'the receipt has expired' },
  wrong_issuer: { code: 'unauthenticated', message: 'the receipt was issued by another gateway' },
  wrong_audience: { code: 'unauthenticated', message: 'the receipt is for another target' },
  jwks_unavailable: { code: 'unavailable', message: "the gateway's JWKS could not be fetched" },
  wrong_call: { code: 'access_denied', message: 'the receipt is for another tenant, gateway or tool' },
  wrong_principal: { code: 'access_denied', message: 'the receipt is for another user or agent' },
  arguments_changed: { code: 'access_denied', message: 'the arguments are not the ones the receipt binds' },
  replayed: { code: 'access_denied', message: 'the receipt was presented before: each one authorizes one call' },
} as const satisfies Record<string, { code: ErrorCode; message: string }>;

export type ReceiptRejection = keyof typeof RECEIPT_REJECTIONS;
