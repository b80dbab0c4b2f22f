import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import {
  DENIAL_REASONS,
  denialError,
  MandateError,
  USER_ID_ISSUER,
  WAT_AUDIENCE,
  WAT_TYPE,
  type AuditActionOf,
  type AuditSink,
  type authorizerAudit,
  type DenialReason,
  type ResponseOf,
  type TenantId,
  type UserRef,
  type WatBinding,
  type WatResponse,
  type Workload,
  type authorizeEndpoint,
} from '@mandate/contracts';
import { ExpiringCache } from '@mandate/cache';
import type { SigningKeyRing } from '@mandate/signing-keys';
import { lazyInstruments } from '@mandate/telemetry';
import type { InboundAuthorizer } from './inbound/inbound-authorizer.js';
import type { WorkloadAuthentication } from './workload-authentication.js';

export interface WorkloadSource {
  get(tenant: TenantId, name: string): Promise<Workload | undefined>;
}

export interface TokenServiceOptions {
  workloads: WorkloadSource;
  inbound: InboundAuthorizer;
  authentication: WorkloadAuthentication;
  keys: SigningKeyRing;
  audit: AuditSink<AuditActionOf<typeof authorizerAudit>>;
  issuer: string;
  watTtlSeconds: number;
  /** WATs minted for a user JWT are handed out again for the same JWT while fresh; 0 disables. */
  watCacheSize?: number;
  now?: () => number;
}

type AuthorizeResult = ResponseOf<typeof authorizeEndpoint>;

const instruments = lazyInstruments('@mandate/authorizer', (meter) => ({
  decisions: meter.createCounter('mandate.authorizer.inbound_decisions', { description: 'Inbound authorizations by outcome and denial reason' }),
  mints: meter.createCounter('mandate.authorizer.wat_mints', { description: 'WAT requests by binding and outcome' }),
}));

/** Denials whose audit record already says what really happened (which the caller must not learn). */
const audited = new WeakSet<MandateError>();
function alreadyAudited(error: MandateError): MandateError {
  audited.add(error);
  return error;
}

function reasonOf(error: unknown): DenialReason | undefined {
  const reason = error instanceof MandateError ? error.details?.['reason'] : undefined;
  return typeof reason === 'string' && reason in DENIAL_REASONS ? (reason as DenialReason) : undefined;
}

/**
 * The authorizer's decisions: inbound authorization and the three ways to get a WAT. Every
 * decision, allow or deny, becomes an audit record with its reason; never with a token.
 */
export class TokenService {
  readonly #options: Required<TokenServiceOptions>;
  /** Keyed by the user JWT's hash, the workload and its revision; a WAT is reused while it has half its life left. */
  readonly #minted: ExpiringCache<{ response: WatResponse; exp: number }>;

  constructor(options: TokenServiceOptions) {
    this.#options = { now: Date.now, watCacheSize: 0, ...options };
    this.#minted = new ExpiringCache(this.#options.watCacheSize);
  }

  async authorize(tenant: TenantId, workloadName: string, token: string, resource?: string): Promise<AuthorizeResult> {
    const workload = await this.#options.workloads.get(tenant, workloadName);
    const decision = workload ? await this.#options.inbound.authorize(workload, token, resource) : ({ allowed: false, reason: 'workload_not_found' } as const);
    instruments().decisions.add(1, { outcome: decision.allowed ? 'allowed' : 'denied', reason: decision.allowed ? 'none' : decision.reason });
    await this.#options.audit.audit({
      tenant,
      action: 'authorize',
      outcome: decision.allowed ? 'allowed' : 'denied',
      ...(decision.allowed ? {} : { reason: decision.reason }),
      actor: { workload: workloadName, ...(decision.allowed ? { user: decision.principal.user } : {}) },
      ...(resource ? { target: { resource } } : {}),
      ...(decision.allowed && decision.principal.clientId ? { details: { clientId: decision.principal.clientId } } : {}),
    });
    if (!decision.allowed) return { allowed: false, reason: decision.reason, message: DENIAL_REASONS[decision.reason].message };
    const { principal } = decision;
    return {
      allowed: true,
      user: principal.user,
      ...(principal.clientId ? { clientId: principal.clientId } : {}),
      scopes: principal.scopes,
      expiresAt: new Date(principal.expiresAt * 1000).toISOString(),
    };
  }

  forWorkload(tenant: TenantId, workloadName: string, assertion: string): Promise<WatResponse> {
    return this.#mint(tenant, workloadName, 'workload', async (workload) => {
      await this.#options.authentication.authenticate(workload, assertion);
      return {};
    });
  }

  forJwt(tenant: TenantId, workloadName: string, userToken: string, assertion: string): Promise<WatResponse> {
    return this.#mint(tenant, workloadName, 'user-jwt', async (workload) => {
      await this.#options.authentication.authenticate(workload, assertion);
      const decision = await this.#options.inbound.authorize(workload, userToken);
      if (!decision.allowed) throw denialError(decision.reason, { cause: decision.cause });
      const cacheKey = this.#minted.enabled ? ExpiringCache.keyOf(tenant, workload.name, workload.revision, userToken) : undefined;
      return { user: decision.principal.user, notAfter: decision.principal.expiresAt, cacheKey };
    });
  }

  forUser(tenant: TenantId, workloadName: string, userId: string, assertion: string): Promise<WatResponse> {
    return this.#mint(tenant, workloadName, 'user-id', async (workload) => {
      await this.#options.authentication.authenticate(workload, assertion);
      if (!workload.allowUserIdTokens) throw denialError('user_id_tokens_not_allowed');
      return { user: { iss: USER_ID_ISSUER, sub: userId } };
    });
  }

  /** Looks the workload up, runs the binding's proof, signs; audits whichever way it ends. */
  async #mint(
    tenant: TenantId,
    workloadName: string,
    binding: WatBinding,
    prove: (workload: Workload) => Promise<{ user?: UserRef; notAfter?: number; cacheKey?: string | undefined }>,
  ): Promise<WatResponse> {
    let user: UserRef | undefined;
    try {
      const workload = await this.#options.workloads.get(tenant, workloadName);
      if (!workload) {
        // Before a client assertion is checked, the caller is nobody: do not tell them which names exist.
        if (binding === 'user-jwt') throw denialError('workload_not_found');
        await this.#auditMint(tenant, workloadName, binding, undefined, 'workload_not_found');
        throw alreadyAudited(denialError('assertion_unknown_key'));
      }
      const proof = await prove(workload);
      user = proof.user;
      const reused = proof.cacheKey ? this.#reuse(proof.cacheKey) : undefined;
      const response = reused ?? (await this.#sign(tenant, workloadName, binding, proof.user, proof.notAfter, proof.cacheKey));
      instruments().mints.add(1, { binding, outcome: 'succeeded' });
      await this.#auditMint(tenant, workloadName, binding, user, undefined, reused !== undefined);
      return response;
    } catch (error) {
      const reason = reasonOf(error);
      instruments().mints.add(1, { binding, outcome: 'denied', reason: reason ?? 'error' });
      if (reason && !audited.has(error as MandateError)) await this.#auditMint(tenant, workloadName, binding, user, reason);
      throw error;
    }
  }

  #reuse(cacheKey: string): WatResponse | undefined {
    const now = Math.floor(this.#options.now() / 1000);
    const cached = this.#minted.get(cacheKey, now);
    return cached && { ...cached.response, expiresIn: cached.exp - now };
  }

  async #sign(
    tenant: TenantId,
    workload: string,
    binding: WatBinding,
    user: UserRef | undefined,
    notAfter: number | undefined,
    cacheKey: string | undefined,
  ): Promise<WatResponse> {
    const now = Math.floor(this.#options.now() / 1000);
    const exp = Math.min(now + this.#options.watTtlSeconds, notAfter ?? Number.POSITIVE_INFINITY);
    if (exp <= now) throw denialError('token_expired');
    const { kid, alg, key } = await this.#options.keys.signingKey();
    const token = await new SignJWT({ tenant, workload, bnd: binding, ...(user ? { user } : {}) })
      .setProtectedHeader({ alg, kid, typ: WAT_TYPE })
      .setIssuer(this.#options.issuer)
      .setAudience(WAT_AUDIENCE)
      .setSubject(workload)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key);
    const response: WatResponse = { token, tokenType: WAT_TYPE, expiresAt: new Date(exp * 1000).toISOString(), expiresIn: exp - now };
    if (cacheKey) this.#minted.set(cacheKey, { response, exp }, now + Math.floor((exp - now) / 2));
    return response;
  }

  #auditMint(tenant: TenantId, workload: string, binding: WatBinding, user: UserRef | undefined, reason: DenialReason | undefined, reused = false) {
    return this.#options.audit.audit({
      tenant,
      action: 'wat-mint',
      outcome: reason ? 'denied' : 'succeeded',
      ...(reason ? { reason } : {}),
      actor: { workload, ...(user ? { user } : {}) },
      details: { binding, ...(reused ? { reused } : {}) },
    });
  }
}
