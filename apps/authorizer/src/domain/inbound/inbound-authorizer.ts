import { ExpiringCache } from '@mandate/cache';
import { runChecks } from '@mandate/checks';
import type { DenialReason, MandateError, UserRef, Workload } from '@mandate/contracts';
import { clientOf, denialReasonOf, INBOUND_CHECKS, scopesOf, type InboundContext } from './checks.js';
import type { IdentityProviders } from './identity-providers.js';

/** Who the token proved the caller to be, when it is allowed. */
export interface InboundPrincipal {
  user: UserRef;
  clientId: string | undefined;
  scopes: string[];
  /** Seconds since the epoch. */
  expiresAt: number;
}

export type InboundDecision = { allowed: true; principal: InboundPrincipal } | { allowed: false; reason: DenialReason; cause?: unknown };

export interface InboundAuthorizerOptions {
  idps: IdentityProviders;
  clockToleranceSeconds: number;
  /** Allowed tokens remembered by hash until they expire; 0 disables. */
  cacheSize: number;
  now?: () => number;
}

/**
 * Runs a user's token through `INBOUND_CHECKS` against one workload's authorizer config.
 * An allowed token is remembered by its SHA-256 (never the token itself) with the workload and
 * the config revision, until it expires: the repeat of a valid token skips the crypto.
 */
export class InboundAuthorizer {
  readonly #options: Required<InboundAuthorizerOptions>;
  readonly #allowed: ExpiringCache<InboundPrincipal>;

  constructor(options: InboundAuthorizerOptions) {
    this.#options = { now: Date.now, ...options };
    this.#allowed = new ExpiringCache(options.cacheSize);
  }

  /** `resource`: the resource the token is presented to, which it must name as an audience (a token allowed without one is not allowed for it). */
  async authorize(workload: Workload, token: string, resource?: string): Promise<InboundDecision> {
    if (!workload.authorizer) return { allowed: false, reason: 'no_authorizer_config' };
    const now = Math.floor(this.#options.now() / 1000);
    const cacheKey = this.#allowed.enabled ? ExpiringCache.keyOf(workload.tenant, workload.name, workload.revision, resource ?? '', token) : '';
    const cached = this.#allowed.get(cacheKey, now);
    if (cached) return { allowed: true, principal: cached };

    const ctx: InboundContext = {
      token,
      config: workload.authorizer,
      now,
      clockToleranceSeconds: this.#options.clockToleranceSeconds,
      resolveIdp: (url) => this.#options.idps.resolve(url),
      resource,
    };
    const failure = await runChecks(INBOUND_CHECKS, ctx, denialReasonOf);
    if (failure) return { allowed: false, reason: failure.reason, cause: (failure.error as MandateError).cause };
    const claims = ctx.claims!;
    const principal: InboundPrincipal = {
      user: { iss: claims.iss!, sub: claims.sub! },
      clientId: clientOf(claims),
      scopes: scopesOf(claims),
      expiresAt: claims.exp!,
    };
    this.#allowed.set(cacheKey, principal, principal.expiresAt);
    return { allowed: true, principal };
  }
}
