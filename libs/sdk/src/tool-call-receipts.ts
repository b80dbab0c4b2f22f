import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { MandateError, RECEIPT_REJECTIONS, RECEIPT_TYPE, receiptClaimsSchema, upstreamToolName, type ReceiptPolicy, type ReceiptRejection, type UserRef } from '@mandate/contracts';
import { callDigest } from '@mandate/tool-policy/call-digest';

/**
 * The call as the target received it, and what it expects of who made it. Which tool was called
 * is required (`name` or `tool`): a receipt for one tool must never pass for another tool called
 * with the same arguments.
 */
export type ReceivedToolCall = ReceivedCallCommon &
  (
    | {
        /** The tool as the target was asked for it (MCP `params.name`, the OpenAPI `operationId`): the receipt's tool must be `<target>___<name>`, or `<name>` for a target whose tools keep their own names. */
        name: string;
        tool?: string;
      }
    | {
        name?: string;
        /** The tool's gateway name: `<target>___<tool>`, or the target's own name (`toolNames: as-given`). */
        tool: string;
      }
  );

interface ReceivedCallCommon {
  /** Exactly the arguments the target was sent. */
  arguments: Record<string, unknown>;
  /** Each one given must be the receipt's. */
  tenant?: string;
  gateway?: string;
  /** The user the target acts for (for instance, the owner of the credential it was called with). */
  user?: UserRef;
  /** The agent (the inbound token's client) the target expects. */
  agent?: string;
}

export interface VerifyToolCallReceiptOptions {
  /**
   * The gateway's receipt keys: the URL of its JWKS (`<GATEWAY_PUBLIC_URL>/.well-known/jwks.json`,
   * also the `jwks_uri` of its protected-resource metadata; fetched once, again for an unknown
   * kid), the key set itself, or a jose key resolver.
   */
  jwks: URL | JSONWebKeySet | JWTVerifyGetKey;
  /**
   * The gateways accepted (`iss`, each a resource URL `<GATEWAY_PUBLIC_URL>/mcp/<tenant>/<gateway>`).
   * Give it: one JWKS serves every gateway of a deployment.
   */
  issuer: string | readonly string[];
  /** The target's own address, as its gateway calls it (`aud`): an MCP server's URL, an OpenAPI base URL. Required: a receipt for another target must not pass. */
  audience: string | readonly string[];
  call: ReceivedToolCall;
  /**
   * Refuses a receipt presented a second time (`replayed`): give one to a target whose calls must
   * not be repeated by whoever saw a request (a log, a proxy) within the receipt's life.
   * {@link ReceiptReplayGuard} keeps the ids in memory (one process); a target with replicas gives
   * one backed by its shared store.
   */
  replayGuard?: ReceiptReplayGuardPort;
  /** Seconds of clock skew tolerated on `exp` and `iat` (default 30). */
  clockToleranceSeconds?: number;
  /** For tests: the time to check against. */
  currentDate?: Date;
}

/** What a verified receipt says: who made the call, through which gateway, and what decided it. */
export interface VerifiedToolCallReceipt {
  /** The receipt's `jti`, unique per call (a target may use it to refuse a replay). */
  id: string;
  /** The gateway's resource URL. */
  issuer: string;
  tenant: string;
  gateway: string;
  tool: string;
  user: UserRef;
  agent?: string;
  decision: 'allow';
  /** The policy set that decided (name, version, content hash, mode, determining policies), when one is attached. */
  policy?: ReceiptPolicy;
  /** The approval a person gave, when the call was held for one. */
  approval?: string;
  issuedAt: Date;
  expiresAt: Date;
}

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
const MAX_REMOTE_KEY_SETS = 64;
/** One fetched key set per JWKS URL, so its cache (and the refetch of an unknown kid) is shared by every check. */
const remoteKeySets = new Map<string, JWTVerifyGetKey>();

/**
 * Checks the receipt a Mandate gateway attached to a tool call (MCP: `params._meta["io.mandate/receipt"]`,
 * HTTP: the `Mandate-Receipt` header) against the call as received: the JWS with the gateway's
 * JWKS, its type, issuer, audience and lifetime, then the RFC 8785 digest of the call recomputed
 * from the arguments received. Answers who made the call and what decided it; otherwise throws a
 * `MandateError` whose `details.reason` says why (`arguments_changed`, `wrong_principal`,
 * `expired`, `unknown_key`, …).
 */
export async function verifyToolCallReceipt(receipt: string, options: VerifyToolCallReceiptOptions): Promise<VerifiedToolCallReceipt> {
  // Checked at run time too: a JavaScript caller without types must not get a receipt that passes for any target or tool.
  if ([options.issuer].flat().length === 0 || [options.audience].flat().length === 0 || (options.call.name === undefined && options.call.tool === undefined)) {
    throw new TypeError('verifyToolCallReceipt needs issuer, audience and the tool called (call.name or call.tool)');
  }
  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(receipt, keysOf(options.jwks), {
      typ: RECEIPT_TYPE,
      algorithms: ['EdDSA', 'ES256'],
      requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'sub'],
      issuer: [options.issuer].flat(),
      audience: [options.audience].flat(),
      clockTolerance: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
      ...(options.currentDate ? { currentDate: options.currentDate } : {}),
    }));
  } catch (error) {
    throw rejected(rejectionOf(error), error);
  }
  const parsed = receiptClaimsSchema.safeParse(payload);
  if (!parsed.success) throw rejected('malformed');
  const claims = parsed.data;
  const user = { iss: claims.sub_id.iss, sub: claims.sub_id.sub };
  const { call } = options;
  if (claims.sub !== user.sub) throw rejected('malformed');
  if ((call.tenant !== undefined && call.tenant !== claims.tenant) || (call.gateway !== undefined && call.gateway !== claims.gateway) || (call.tool !== undefined && call.tool !== claims.tool)) {
    throw rejected('wrong_call');
  }
  if (call.name !== undefined && upstreamToolName(claims.tool) !== call.name) throw rejected('wrong_call');
  if ((call.user && (call.user.iss !== user.iss || call.user.sub !== user.sub)) || (call.agent !== undefined && call.agent !== claims.client_id)) throw rejected('wrong_principal');
  const digest = callDigest({ tenant: claims.tenant, user, agent: claims.client_id, gateway: claims.gateway, tool: claims.tool, arguments: call.arguments });
  if (digest !== claims.call_digest) throw rejected('arguments_changed');
  // Last: only a receipt that passed every other check takes up a place in the guard.
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (options.replayGuard && !(await options.replayGuard.firstUse(`${claims.iss}\n${claims.jti}`, new Date((claims.exp + tolerance) * 1000)))) throw rejected('replayed');
  return {
    id: claims.jti,
    issuer: claims.iss,
    tenant: claims.tenant,
    gateway: claims.gateway,
    tool: claims.tool,
    user,
    ...(claims.client_id ? { agent: claims.client_id } : {}),
    decision: claims.decision,
    ...(claims.policy ? { policy: claims.policy } : {}),
    ...(claims.approval ? { approval: claims.approval } : {}),
    issuedAt: new Date(claims.iat * 1000),
    expiresAt: new Date(claims.exp * 1000),
  };
}

/** Remembers receipt ids until they could no longer verify; `false` for an id seen before. */
export interface ReceiptReplayGuardPort {
  firstUse(id: string, forgetAfter: Date): boolean | Promise<boolean>;
}

/**
 * Receipt ids seen by this process, each kept until its receipt has expired (and the clock
 * tolerance with it). Bounded: past `maxEntries` live ids it refuses new receipts (`replayed`)
 * rather than forget one that could still be replayed.
 */
export class ReceiptReplayGuard implements ReceiptReplayGuardPort {
  readonly #seen = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(options: { maxEntries?: number; now?: () => number } = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  firstUse(id: string, forgetAfter: Date): boolean {
    const now = this.#now();
    const until = this.#seen.get(id);
    if (until !== undefined && until > now) return false;
    if (this.#seen.size >= this.#maxEntries) this.#sweep(now);
    if (this.#seen.size >= this.#maxEntries) return false;
    this.#seen.set(id, forgetAfter.getTime());
    return true;
  }

  #sweep(now: number): void {
    for (const [id, until] of this.#seen) if (until <= now) this.#seen.delete(id);
  }
}

function keysOf(jwks: VerifyToolCallReceiptOptions['jwks']): JWTVerifyGetKey {
  if (typeof jwks === 'function') return jwks;
  if (!(jwks instanceof URL)) return createLocalJWKSet(jwks);
  let keys = remoteKeySets.get(jwks.href);
  if (!keys) {
    keys = createRemoteJWKSet(jwks);
    remoteKeySets.set(jwks.href, keys);
    if (remoteKeySets.size > MAX_REMOTE_KEY_SETS) remoteKeySets.delete(remoteKeySets.keys().next().value!);
  }
  return keys;
}

function rejectionOf(error: unknown): ReceiptRejection {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown_key';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'iss') return 'wrong_issuer';
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'aud') return 'wrong_audience';
  if (error instanceof errors.JWKSTimeout || (error instanceof errors.JOSEError && /JSON Web Key Set/i.test(error.message)) || error instanceof TypeError) return 'jwks_unavailable';
  return 'malformed';
}

function rejected(reason: ReceiptRejection, cause?: unknown): MandateError {
  const { code, message } = RECEIPT_REJECTIONS[reason];
  return new MandateError(code, `Receipt refused: ${message}`, { details: { reason }, ...(cause === undefined ? {} : { cause }) });
}
