import type { JWK } from 'jose';
import { ExpiringCache, SingleFlight } from '@mandate/cache';
import { MandateError, type TargetCredential, type TenantId } from '@mandate/contracts';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';

/** What the gateway asks of the authorizer and the vault; the assembly wires them to the bus. */
export interface CredentialPorts {
  /** A WAT for the gateway's workload alone (it signs a client assertion with its key). */
  workloadToken(tenant: TenantId, workload: string, privateJwk: JWK): Promise<{ token: string; expiresAt: string }>;
  /** A WAT binding the gateway's workload (proving itself with its key) to the user of an inbound token. */
  userWorkloadToken(tenant: TenantId, workload: string, privateJwk: JWK, userToken: string): Promise<{ token: string; expiresAt: string }>;
  apiKey(tenant: TenantId, workloadToken: string, provider: string): Promise<string>;
  oauth2Token(
    tenant: TenantId,
    workloadToken: string,
    request: { provider: string; scopes: string[]; flow: 'M2M' | 'USER_FEDERATION'; customParameters?: Record<string, string> },
  ): Promise<{ accessToken: string; tokenType: string; expiresAt?: string }>;
}

/** The consent a user must give before this target can be called for them. */
export class ConsentNeeded extends Error {
  constructor(
    readonly url: string,
    readonly provider: string,
  ) {
    super(`consent is needed for ${provider}`);
  }
}

/** Credentials are used this long before their expiry at the latest, so none expires on the way. */
const EXPIRY_MARGIN_MS = 30_000;
/** An API key (which has no expiry) is asked for again after this, so a rotated one is picked up. */
const API_KEY_REUSE_MS = 60_000;

/**
 * The headers that authenticate the gateway at a target, from the vault only: an API key or an M2M
 * token as the gateway itself, a user's token for the principal. The caller's own token never
 * leaves (it is only shown to the authorizer, to bind a WAT to its user). What is shared by every
 * principal (the gateway's WAT, its M2M tokens and API keys) is kept until shortly before it
 * expires, and fetched once however many calls need it at the same time.
 */
export class TargetCredentials {
  readonly #shared = new ExpiringCache<string>(1_000);
  readonly #fetching = new SingleFlight<{ value: string; expiresAt: number }>();
  readonly #now: () => number;

  constructor(
    private readonly ports: CredentialPorts,
    now?: () => number,
  ) {
    this.#now = now ?? Date.now;
  }

  /** Without a principal (discovering a target's tools), a target of users' tokens is asked without one. */
  async headers(gateway: LoadedGateway, credential: TargetCredential, principal: Principal | undefined): Promise<Record<string, string>> {
    return (await this.credential(gateway, credential, principal)).headers;
  }

  /** The headers, and when what they carry expires where the vault said so (a user's token). */
  async credential(gateway: LoadedGateway, credential: TargetCredential, principal: Principal | undefined): Promise<{ headers: Record<string, string>; expiresAt?: number }> {
    switch (credential.kind) {
      case 'none':
        return { headers: {} };
      case 'api-key': {
        const key = await this.#sharedValue(['api-key', gateway.tenant, gateway.name, gateway.workload, gateway.revision, credential.provider], async (wat) => ({
          value: await this.ports.apiKey(gateway.tenant, wat, credential.provider),
          expiresAt: this.#now() + API_KEY_REUSE_MS,
        }), gateway);
        return { headers: credential.header ? { [credential.header]: key } : { authorization: `Bearer ${key}` } };
      }
      case 'oauth2-m2m': {
        const token = await this.#sharedValue(['m2m', gateway.tenant, gateway.name, gateway.workload, gateway.revision, credential.provider, ...credential.scopes], async (wat) => {
          const answer = await this.ports.oauth2Token(gateway.tenant, wat, { provider: credential.provider, scopes: credential.scopes, flow: 'M2M' });
          return { value: answer.accessToken, expiresAt: answer.expiresAt ? Date.parse(answer.expiresAt) : this.#now() + API_KEY_REUSE_MS };
        }, gateway);
        return { headers: { authorization: `Bearer ${token}` } };
      }
      case 'oauth2-user': {
        if (!principal) return { headers: {} };
        const wat = await this.ports.userWorkloadToken(gateway.tenant, gateway.workload, gateway.privateJwk, principal.userToken());
        try {
          const answer = await this.ports.oauth2Token(gateway.tenant, wat.token, {
            provider: credential.provider,
            scopes: credential.scopes,
            flow: 'USER_FEDERATION',
            ...(credential.customParameters ? { customParameters: credential.customParameters } : {}),
          });
          return { headers: { authorization: `Bearer ${answer.accessToken}` }, ...(answer.expiresAt ? { expiresAt: Date.parse(answer.expiresAt) } : {}) };
        } catch (error) {
          const url = error instanceof MandateError && error.code === 'consent_required' ? error.details?.['authorizationUrl'] : undefined;
          if (typeof url === 'string') throw new ConsentNeeded(url, credential.provider);
          throw error;
        }
      }
    }
  }

  async #gatewayToken(gateway: LoadedGateway): Promise<string> {
    return this.#cached(['wat', gateway.tenant, gateway.name, gateway.workload, gateway.revision], async () => {
      const wat = await this.ports.workloadToken(gateway.tenant, gateway.workload, gateway.privateJwk);
      return { value: wat.token, expiresAt: Date.parse(wat.expiresAt) };
    });
  }

  async #sharedValue(parts: (string | number)[], fetch: (wat: string) => Promise<{ value: string; expiresAt: number }>, gateway: LoadedGateway): Promise<string> {
    return this.#cached(parts, async () => fetch(await this.#gatewayToken(gateway)));
  }

  async #cached(parts: (string | number)[], fetch: () => Promise<{ value: string; expiresAt: number }>): Promise<string> {
    const key = ExpiringCache.keyOf(...parts);
    const known = this.#shared.get(key, this.#now());
    if (known !== undefined) return known;
    const fetched = await this.#fetching.run(key, fetch);
    // Replaced shortly before it expires, but never before three quarters of its life: a token
    // that lives less than the margin is reused, not fetched again for every call.
    const now = this.#now();
    this.#shared.set(key, fetched.value, fetched.expiresAt - Math.min(EXPIRY_MARGIN_MS, Math.max(0, fetched.expiresAt - now) / 4));
    return fetched.value;
  }
}
