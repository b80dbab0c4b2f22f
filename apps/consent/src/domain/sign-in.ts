import { createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { MandateError, OIDC_DISCOVERY_SUFFIX, tenantId, type TenantId, type UserRef } from '@mandate/contracts';
import type { LoginTripDocument, BrowserRecords, SignedInDocument } from '../store/repositories.js';
import { personOf, type SignedInPerson } from './signed-in-person.js';

export interface SignInOptions {
  /** `<CONSENT_PUBLIC_URL>/login/callback`, exactly. */
  redirectUri: string;
  /** The consent service's client at the tenant's IdP: a public client (PKCE), or confidential with a secret. */
  clientId: string;
  clientSecret?: string | undefined;
  /** How long a sign-in lasts in this browser. */
  signedInMs: number;
  timeoutMs?: number;
  now?: () => number;
}

const TRIP_TTL_MS = 10 * 60_000;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The browser cookie's value, hashed: stores and audit records never hold the cookie itself. */
export const browserKey = (browserId: string) => createHash('sha256').update(browserId).digest('base64url');

/*
 * Signing the person in at the tenant's IdP (OpenID Connect, authorization code with PKCE S256,
 * nonce and state), so the consent page knows who approves:
 *
 *   no sign-in ──start──> at the IdP (trip stored: state, verifier, nonce, browser, where to go back)
 *                              │──callback, same browser, ID token valid──> signed in (per tenant and browser)
 *                              └──anything else──> refused, nothing stored
 *
 * oauth4webapi does the protocol: discovery, the authorization response (state, RFC 9207 iss),
 * the code exchange, and the ID token's claims (iss, aud, exp, nonce).
 */
export class SignIn {
  readonly #servers = new Map<string, Promise<oauth.AuthorizationServer>>();
  readonly #now: () => number;

  constructor(
    private readonly trips: BrowserRecords<LoginTripDocument>,
    private readonly signedIn: BrowserRecords<SignedInDocument>,
    private readonly options: SignInOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** Who is signed in, in this browser, for this tenant. */
  async current(tenant: TenantId, browserId: string | undefined): Promise<UserRef | undefined> {
    return (await this.person(tenant, browserId))?.user;
  }

  /** Who is signed in, with the groups and roles their ID token said they hold (for deciding approvals). */
  async person(tenant: TenantId, browserId: string | undefined): Promise<SignedInPerson | undefined> {
    if (!browserId) return undefined;
    const stored = await this.signedIn.get(tenant, browserKey(browserId));
    if (!stored || stored.value.expiresAt <= this.#now()) return undefined;
    const { user, groups = [], roles = [], displayName } = stored.value;
    return { user, groups, roles, ...(displayName ? { displayName } : {}) };
  }

  /** Sends the browser to the IdP; after signing in it comes back to `returnPath` (a path of this service). */
  async start(tenant: TenantId, discoveryUrl: string, browserId: string, returnPath: string): Promise<string> {
    if (!returnPath.startsWith('/') || returnPath.startsWith('//') || returnPath.includes('\\')) throw new TypeError('returnPath must be a local path');
    const server = await this.#server(discoveryUrl);
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const nonce = oauth.generateRandomNonce();
    const key = oauth.generateRandomState();
    await this.trips.create(tenant, key, { discoveryUrl, browser: browserKey(browserId), codeVerifier, nonce, returnPath, createdAt: this.#now() }, TRIP_TTL_MS);
    const url = new URL(server.authorization_endpoint!);
    const parameters = {
      response_type: 'code',
      client_id: this.options.clientId,
      redirect_uri: this.options.redirectUri,
      scope: 'openid',
      state: `${tenant}.${key}`,
      nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    };
    for (const [name, value] of Object.entries(parameters)) url.searchParams.set(name, value);
    return url.href;
  }

  /**
   * The IdP's redirect back: only the browser that started the trip, once, with a valid ID token.
   * The sign-in is kept under `signedInBrowserId`, the browser's new cookie.
   */
  async finish(params: URLSearchParams, browserId: string | undefined, signedInBrowserId: string): Promise<{ tenant: TenantId; user: UserRef; returnPath: string }> {
    const { tenant, key } = parseState(params.get('state'));
    const stored = await this.trips.get(tenant, key);
    if (!stored || !browserId || stored.value.browser !== browserKey(browserId)) {
      throw new MandateError('access_denied', 'this sign-in response does not belong to this browser, or was already used');
    }
    if (!(await this.trips.delete(tenant, key, stored.revision))) {
      throw new MandateError('access_denied', 'this sign-in response was already used');
    }
    const trip = stored.value;
    const server = await this.#server(trip.discoveryUrl);
    const client: oauth.Client = { client_id: this.options.clientId };
    const auth = this.options.clientSecret ? oauth.ClientSecretBasic(this.options.clientSecret) : oauth.None();
    let claims: oauth.IDToken;
    try {
      const validated = oauth.validateAuthResponse(server, client, params, params.get('state')!);
      const response = await oauth.authorizationCodeGrantRequest(server, client, auth, validated, this.options.redirectUri, trip.codeVerifier, this.#http(server.token_endpoint!));
      const result = await oauth.processAuthorizationCodeResponse(server, client, response, { expectedNonce: trip.nonce, requireIdToken: true });
      claims = oauth.getValidatedIdTokenClaims(result)!;
    } catch (cause) {
      const reason = cause instanceof oauth.AuthorizationResponseError ? cause.error : cause instanceof oauth.ResponseBodyError ? cause.error : 'invalid_response';
      throw new MandateError('access_denied', `signing in at the identity provider did not succeed (${/^[a-z_]{1,64}$/.test(reason) ? reason : 'invalid_response'})`, { cause });
    }
    // What the ID token says is kept, never the token: the page decides approvals by these groups and roles.
    const person = personOf(claims);
    await this.signedIn.delete(tenant, browserKey(browserId));
    await this.signedIn.create(tenant, browserKey(signedInBrowserId), { ...person, expiresAt: this.#now() + this.options.signedInMs }, this.options.signedInMs);
    return { tenant, user: person.user, returnPath: trip.returnPath };
  }

  async signOut(tenant: TenantId, browserId: string): Promise<void> {
    await this.signedIn.delete(tenant, browserKey(browserId));
  }

  #server(discoveryUrl: string): Promise<oauth.AuthorizationServer> {
    let server = this.#servers.get(discoveryUrl);
    if (!server) {
      const issuer = new URL(discoveryUrl.slice(0, -OIDC_DISCOVERY_SUFFIX.length));
      server = oauth
        .discoveryRequest(issuer, { algorithm: 'oidc', ...this.#http(discoveryUrl) })
        .then((response) => oauth.processDiscoveryResponse(issuer, response))
        .catch((cause: unknown) => {
          this.#servers.delete(discoveryUrl);
          throw new MandateError('unavailable', 'the identity provider could not be reached', { cause });
        });
      this.#servers.set(discoveryUrl, server);
    }
    return server;
  }

  #http(url: string) {
    const parsed = new URL(url);
    const insecure = parsed.protocol === 'http:' && LOOPBACK_HOSTS.has(parsed.hostname);
    return { signal: () => AbortSignal.timeout(this.options.timeoutMs ?? 10_000), ...(insecure ? { [oauth.allowInsecureRequests]: true } : {}) };
  }
}

/** The issuer an OIDC discovery URL names (the directory checks they agree). */
export function issuerOf(discoveryUrl: string): string {
  return discoveryUrl.slice(0, -OIDC_DISCOVERY_SUFFIX.length);
}

/** `state` is `<tenant>.<random>`: the tenant says where the trip is stored, the random part which one. */
export function parseState(state: string | null): { tenant: TenantId; key: string } {
  const match = /^([a-z0-9][a-z0-9-]{0,62})\.([A-Za-z0-9_-]{32,64})$/.exec(state ?? '');
  if (!match) throw new MandateError('access_denied', 'this response has no valid state');
  try {
    return { tenant: tenantId(match[1]!), key: match[2]! };
  } catch {
    throw new MandateError('access_denied', 'this response has no valid state');
  }
}
