import { createHash } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import {
  DEFAULT_WAT_ISSUER,
  denialError,
  jwksEndpoint,
  MandateError,
  MAX_INBOUND_TOKEN_BYTES,
  WAT_AUDIENCE,
  WAT_TYPE,
  watClaimsSchema,
  type UserRef,
  type WatClaims,
} from '@mandate/contracts';
import type { BusClient } from '@mandate/bus';

/** Where the authorizer's public keys come from (over NATS in services, over HTTP elsewhere). */
export type JwksSource = () => Promise<JSONWebKeySet>;

/** The authorizer's JWKS over NATS (`mandate.authorizer.v1.jwks`). */
export function jwksOverNats(bus: BusClient): JwksSource {
  return async () => (await bus.request(jwksEndpoint, {})) as JSONWebKeySet;
}

/** What the verifying service knows the WAT must be for. */
export interface WatExpectation {
  tenant: string;
  /** The workload the caller claims to be; the WAT must have been issued to it. */
  workload?: string;
  /** The user the request is about; the WAT must be bound to exactly this user. */
  user?: UserRef;
  /** Refuse WATs for the workload alone (no user bound). */
  requireUser?: boolean;
}

export interface WatVerifierOptions {
  jwks: JwksSource;
  issuer?: string;
  /** Refetch the key set at least this often. Default 5 minutes. */
  cacheMaxAgeMs?: number;
  /** After a refetch for an unknown `kid`, wait this long before another. Default 30 s. */
  cooldownMs?: number;
  /** Default 5 s: WATs are minted by our own clock-synchronised services. */
  clockToleranceSeconds?: number;
  /** Verified WATs remembered by SHA-256 until they expire, so a repeated WAT skips the signature check; 0 disables. Default 10,000. */
  cacheSize?: number;
  now?: () => number;
}

/** Only what the authorizer signs with. */
const WAT_ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256'];

/**
 * Verifies WATs locally with a cached copy of the authorizer's JWKS: no round trip per request.
 * An unknown `kid` (a key rotated in since the last fetch) triggers one refetch, then a cooldown,
 * so a flood of forged kids cannot turn into a flood of fetches.
 */
export class WatVerifier {
  readonly #options: Required<Omit<WatVerifierOptions, 'jwks'>> & { jwks: JwksSource };
  #keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #fetching: Promise<void> | undefined;
  readonly #verified = new Map<string, WatClaims>();

  constructor(options: WatVerifierOptions) {
    this.#options = {
      issuer: DEFAULT_WAT_ISSUER,
      cacheMaxAgeMs: 5 * 60_000,
      cooldownMs: 30_000,
      clockToleranceSeconds: 5,
      cacheSize: 10_000,
      now: Date.now,
      ...options,
    };
  }

  /** The WAT's claims, or a `MandateError` whose `details.reason` says why it was refused. */
  async verify(token: string, expected: WatExpectation): Promise<WatClaims> {
    if (Buffer.byteLength(token, 'utf8') > MAX_INBOUND_TOKEN_BYTES) throw denialError('wat_invalid');
    // The expectation is checked on every call; only the signature and claim validation are remembered.
    const key = this.#options.cacheSize > 0 ? createHash('sha256').update(token).digest('base64url') : '';
    const remembered = this.#verified.get(key);
    if (remembered && remembered.exp > this.#options.now() / 1000) return checkExpectation(remembered, expected);
    if (remembered) this.#verified.delete(key);
    if (this.#options.now() - this.#fetchedAt > this.#options.cacheMaxAgeMs) await this.#refresh();
    let payload: unknown;
    try {
      payload = await this.#verifySignature(token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || this.#options.now() - this.#fetchedAt < this.#options.cooldownMs) throw toDenial(error);
      await this.#refresh();
      payload = await this.#verifySignature(token).catch((retryError: unknown) => {
        throw toDenial(retryError);
      });
    }
    const claims = watClaimsSchema.safeParse(payload);
    if (!claims.success) throw denialError('wat_invalid');
    if (key) this.#remember(key, claims.data);
    return checkExpectation(claims.data, expected);
  }

  #remember(key: string, claims: WatClaims): void {
    if (this.#verified.size >= this.#options.cacheSize) {
      const oldest = this.#verified.keys().next().value;
      if (oldest !== undefined) this.#verified.delete(oldest);
    }
    this.#verified.set(key, claims);
  }

  async #verifySignature(token: string): Promise<unknown> {
    if (!this.#keySet) throw denialError('wat_invalid');
    const { payload } = await jwtVerify(token, this.#keySet, {
      issuer: this.#options.issuer,
      audience: WAT_AUDIENCE,
      typ: WAT_TYPE,
      algorithms: WAT_ALGORITHMS,
      clockTolerance: this.#options.clockToleranceSeconds,
      currentDate: new Date(this.#options.now()),
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
    });
    return payload;
  }

  /** One fetch at a time; a failed fetch keeps the previous keys (they may still verify). */
  #refresh(): Promise<void> {
    this.#fetching ??= (async () => {
      try {
        this.#keySet = createLocalJWKSet(await this.#options.jwks());
        this.#fetchedAt = this.#options.now();
      } catch (cause) {
        if (!this.#keySet) throw denialError('jwks_unavailable', { cause });
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }
}

function toDenial(error: unknown): Error {
  if (error instanceof MandateError) return error;
  return denialError(error instanceof errors.JWTExpired ? 'wat_expired' : 'wat_invalid', { cause: error });
}

function checkExpectation(claims: WatClaims, expected: WatExpectation): WatClaims {
  if (claims.tenant !== expected.tenant) throw denialError('wat_wrong_tenant');
  if (claims.workload !== claims.sub) throw denialError('wat_invalid');
  if (expected.workload !== undefined && claims.workload !== expected.workload) throw denialError('wat_wrong_workload');
  if ((expected.requireUser || expected.user) && !claims.user) throw denialError('wat_not_user_bound');
  if (expected.user && (claims.user?.iss !== expected.user.iss || claims.user?.sub !== expected.user.sub)) throw denialError('wat_wrong_user');
  return claims;
}
