import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ASYMMETRIC_JWS_ALGORITHMS, denialError, OIDC_DISCOVERY_SUFFIX } from '@mandate/contracts';

/** What we use of an IdP, learned from its discovery document. */
export interface IdentityProvider {
  readonly issuer: string;
  /** Asymmetric algorithms the IdP advertises; nothing else is accepted from it. */
  readonly algorithms: readonly string[];
  readonly keys: JWTVerifyGetKey;
}

export interface IdentityProvidersOptions {
  fetchTimeoutMs: number;
  jwksCooldownMs: number;
  discoveryTtlMs: number;
  now?: () => number;
}

const MAX_DISCOVERY_BYTES = 512 * 1024;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const discoverySchema = z.object({
  issuer: z.string().min(1),
  jwks_uri: z.string().min(1),
  id_token_signing_alg_values_supported: z.array(z.string()).optional(),
});

/** The issuer a discovery URL must announce (OIDC Discovery 1.0, section 4.3). */
export function issuerOf(discoveryUrl: string): string {
  return discoveryUrl.slice(0, -OIDC_DISCOVERY_SUFFIX.length);
}

function isSafeKeyUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

/**
 * IdPs by discovery URL. Only URLs an administrator configured are ever fetched; the token being
 * checked never chooses what we fetch. Discovery documents are cached; each IdP keeps one
 * `createRemoteJWKSet`, which caches keys, refetches once on an unknown `kid` and then cools down.
 */
export class IdentityProviders {
  readonly #providers = new Map<string, { provider: Promise<IdentityProvider>; fetchedAt: number }>();
  readonly #options: Required<IdentityProvidersOptions>;

  constructor(options: IdentityProvidersOptions) {
    this.#options = { now: Date.now, ...options };
  }

  resolve(discoveryUrl: string): Promise<IdentityProvider> {
    const now = this.#options.now();
    const cached = this.#providers.get(discoveryUrl);
    if (cached && now - cached.fetchedAt < this.#options.discoveryTtlMs) return cached.provider;
    const provider = this.#discover(discoveryUrl);
    this.#providers.set(discoveryUrl, { provider, fetchedAt: now });
    // A failed discovery is not cached: the next request tries again.
    provider.catch(() => {
      if (this.#providers.get(discoveryUrl)?.provider === provider) this.#providers.delete(discoveryUrl);
    });
    return provider;
  }

  async #discover(discoveryUrl: string): Promise<IdentityProvider> {
    const document = await this.#fetchDiscovery(discoveryUrl);
    if (document.issuer !== issuerOf(discoveryUrl)) throw denialError('discovery_issuer_mismatch');
    if (!isSafeKeyUrl(document.jwks_uri)) throw denialError('idp_discovery_failed');
    const advertised = document.id_token_signing_alg_values_supported ?? ['RS256'];
    const algorithms = advertised.filter((alg) => (ASYMMETRIC_JWS_ALGORITHMS as readonly string[]).includes(alg));
    return {
      issuer: document.issuer,
      algorithms,
      keys: createRemoteJWKSet(new URL(document.jwks_uri), {
        timeoutDuration: this.#options.fetchTimeoutMs,
        cooldownDuration: this.#options.jwksCooldownMs,
        cacheMaxAge: 10 * 60_000,
      }),
    };
  }

  async #fetchDiscovery(discoveryUrl: string): Promise<z.output<typeof discoverySchema>> {
    try {
      const response = await fetch(discoveryUrl, {
        redirect: 'error',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.#options.fetchTimeoutMs),
      });
      if (!response.ok) throw new Error(`discovery answered HTTP ${response.status}`);
      const text = await response.text();
      if (text.length > MAX_DISCOVERY_BYTES) throw new Error('discovery document too large');
      return discoverySchema.parse(JSON.parse(text));
    } catch (cause) {
      throw denialError('idp_discovery_failed', { cause });
    }
  }
}
