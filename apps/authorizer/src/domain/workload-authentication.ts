import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import {
  ASYMMETRIC_JWS_ALGORITHMS,
  denialError,
  MAX_CLIENT_ASSERTION_LIFETIME_SECONDS,
  type DenialReason,
  type TenantId,
  type Workload,
} from '@mandate/contracts';

/** Remembers assertion ids until they expire; `false` when the id was already seen. */
export interface ReplayGuard {
  firstUse(tenant: TenantId, workload: string, jti: string, expiresAtSeconds: number): Promise<boolean>;
}

export interface WorkloadAuthenticationOptions {
  /** Our identifier: the `aud` every assertion must carry. */
  audience: string;
  clockToleranceSeconds: number;
  replayGuard: ReplayGuard;
  now?: () => number;
}

const OWN_TOKEN_TYPES = new Set(['wat+jwt', 'application/wat+jwt']);

/**
 * One jose key set per registered key set, as the directory returned it: jose clones the set it is
 * given and imports each key on first use, so a key set made per request cloned and imported the
 * workload's keys every time. Keyed by the object, so a workload changed in the directory (a new
 * object) gets a key set of its own, and one no longer held is forgotten.
 */
const keySets = new WeakMap<object, ReturnType<typeof createLocalJWKSet>>();

function keySetOf(workload: Workload): ReturnType<typeof createLocalJWKSet> {
  let keySet = keySets.get(workload.publicKeys);
  if (!keySet) {
    keySet = createLocalJWKSet(workload.publicKeys as JSONWebKeySet);
    keySets.set(workload.publicKeys, keySet);
  }
  return keySet;
}

function claimFailure(error: errors.JWTClaimValidationFailed): DenialReason {
  if (error.claim === 'iss' || error.claim === 'sub') return 'assertion_wrong_subject';
  if (error.claim === 'aud') return 'assertion_wrong_audience';
  return 'assertion_invalid';
}

function verificationFailure(error: unknown): DenialReason {
  if (error instanceof errors.JWTExpired) return 'assertion_expired';
  if (error instanceof errors.JWTClaimValidationFailed) return claimFailure(error);
  // Signed by a key that is not registered for this workload, or not signed by it at all.
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWSSignatureVerificationFailed) return 'assertion_unknown_key';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  return 'assertion_invalid';
}

/**
 * RFC 7523 `private_key_jwt`: a workload proves it holds a key registered for it in the
 * directory. `iss` and `sub` are the workload, `aud` is us, the lifetime is short, and each `jti`
 * is accepted once.
 */
export class WorkloadAuthentication {
  readonly #options: Required<WorkloadAuthenticationOptions>;

  constructor(options: WorkloadAuthenticationOptions) {
    this.#options = { now: Date.now, ...options };
  }

  /** Resolves when `assertion` proves `workload`; otherwise throws the denial. */
  async authenticate(workload: Workload, assertion: string): Promise<void> {
    if (workload.publicKeys.keys.length === 0) throw denialError('workload_has_no_keys');
    let typ: unknown;
    let crit: unknown;
    try {
      ({ typ, crit } = decodeProtectedHeader(assertion));
    } catch (cause) {
      throw denialError('assertion_invalid', { cause });
    }
    if (typeof typ === 'string' && OWN_TOKEN_TYPES.has(typ.toLowerCase())) throw denialError('wrong_token_type');
    if (crit !== undefined) throw denialError('unsupported_critical_header');

    const now = this.#options.now();
    let payload;
    try {
      ({ payload } = await jwtVerify(assertion, keySetOf(workload), {
        issuer: workload.name,
        subject: workload.name,
        audience: this.#options.audience,
        algorithms: [...ASYMMETRIC_JWS_ALGORITHMS],
        clockTolerance: this.#options.clockToleranceSeconds,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'jti'],
      }));
    } catch (cause) {
      throw denialError(verificationFailure(cause), { cause });
    }
    const issuedAt = typeof payload.iat === 'number' ? payload.iat : Math.floor(now / 1000);
    if (payload.exp! - issuedAt > MAX_CLIENT_ASSERTION_LIFETIME_SECONDS + this.#options.clockToleranceSeconds) {
      throw denialError('assertion_lifetime_too_long');
    }
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) throw denialError('assertion_invalid');
    const fresh = await this.#options.replayGuard.firstUse(
      workload.tenant,
      workload.name,
      payload.jti,
      payload.exp! + this.#options.clockToleranceSeconds,
    );
    if (!fresh) throw denialError('assertion_replayed');
  }
}
