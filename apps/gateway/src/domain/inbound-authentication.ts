import { decodeJwt } from 'jose';
import { ExpiringCache } from '@mandate/cache';
import type { DenialReason, ResponseOf, TenantId, UserRef, authorizeEndpoint } from '@mandate/contracts';
import type { LoadedGateway } from './gateway-registry.js';

/** Who is calling through a gateway: the user of the inbound token and the scopes it carries. */
export interface Principal {
  readonly user: UserRef;
  readonly clientId?: string;
  readonly scopes: ReadonlySet<string>;
  /** The token's verified claims, for interceptors (a token's claims are no credential). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** The inbound token, only to have the authorizer bind a WAT to its user; it is never sent to a target. */
  readonly userToken: () => string;
}

/**
 * Why an MCP request is refused before it reaches MCP (RFC 6750 §3, as the MCP authorization
 * spec uses it): no token (401, no error code), a token that is not good for this gateway (401
 * `invalid_token`), or one without any of its scopes (403 `insufficient_scope`, naming them all).
 */
export class InboundRefusal extends Error {
  constructor(
    readonly status: 401 | 403 | 503,
    readonly error: 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable' | undefined,
    message: string,
    readonly scope?: string,
  ) {
    super(message);
  }
}

/** `resource`: the gateway's resource URL, which the authorizer requires among the token's audiences (so a refusal is on its record too). */
export type Authorize = (tenant: TenantId, workload: string, token: string, resource: string) => Promise<ResponseOf<typeof authorizeEndpoint>>;

const UNAVAILABLE: readonly DenialReason[] = ['idp_discovery_failed', 'jwks_unavailable'];

/**
 * Checks the bearer token of every MCP request with the authorizer's pipeline, against the
 * gateway workload's inbound config (issuer, audiences, clients, scopes, claims), and that it
 * names this gateway's resource URL as audience (RFC 8707), whatever else that config allows: the
 * authorizer checks that too (`resource`), so its audit record of a refused token says so.
 * An accepted token is remembered for a short while (never past its expiry), keyed by its hash.
 */
export class InboundAuthentication {
  readonly #accepted: ExpiringCache<Omit<Principal, 'userToken'>>;

  constructor(
    private readonly authorize: Authorize,
    private readonly options: { cacheMs: number; maxEntries?: number; now?: () => number },
  ) {
    this.#accepted = new ExpiringCache(options.cacheMs > 0 ? (options.maxEntries ?? 10_000) : 0);
  }

  async principal(gateway: LoadedGateway, authorization: string | undefined): Promise<Principal> {
    const token = /^Bearer ([^\s]+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw new InboundRefusal(401, undefined, 'this gateway needs a bearer token');
    const now = (this.options.now ?? Date.now)();
    const key = ExpiringCache.keyOf(gateway.tenant, gateway.name, gateway.revision, token);
    const known = this.#accepted.get(key, now);
    if (known) return { ...known, userToken: () => token };
    const answer = await this.authorize(gateway.tenant, gateway.workload, token, gateway.resourceUrl);
    if (!answer.allowed) {
      if (answer.reason === 'scope_not_allowed') throw new InboundRefusal(403, 'insufficient_scope', answer.message, gateway.scopesSupported.join(' '));
      if (UNAVAILABLE.includes(answer.reason)) throw new InboundRefusal(503, 'temporarily_unavailable', answer.message);
      throw new InboundRefusal(401, 'invalid_token', answer.message);
    }
    // The authorizer has verified the signature; what is decoded here is what it verified.
    const claims = decodeJwt(token);
    const audience = claims.aud;
    if (!(Array.isArray(audience) ? audience : [audience]).includes(gateway.resourceUrl)) {
      throw new InboundRefusal(401, 'invalid_token', `the token's audience is not this gateway (${gateway.resourceUrl})`);
    }
    const principal = {
      user: answer.user,
      ...(answer.clientId ? { clientId: answer.clientId } : {}),
      scopes: new Set(answer.scopes),
      claims,
      expiresAt: Date.parse(answer.expiresAt),
    };
    this.#accepted.set(key, principal, Math.min(principal.expiresAt, now + this.options.cacheMs));
    return { ...principal, userToken: () => token };
  }
}
