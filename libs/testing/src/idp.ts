import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import Provider, { type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { freePort } from './nats-server.js';

type SigningAlg = 'RS256' | 'ES256';

/** Options for {@link startTestIdp}. */
export interface TestIdpOptions {
  /** Algorithm access tokens are signed with (default `RS256`); a key for the other one is published as well. */
  alg?: SigningAlg;
}

/** A private signing key of the test IdP, with the public half as published in its JWKS. */
export interface TestIdpSigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** How the JWKS endpoint answers; see {@link TestIdp.setJwksBehaviour}. */
export type JwksBehaviour = { mode: 'normal' } | { mode: 'down' } | { mode: 'slow'; delayMs: number } | { mode: 'html' };

/** A real OpenID Provider (oidc-provider) on a free loopback port, with knobs for failure tests. */
export interface TestIdp {
  /** `http://127.0.0.1:<port>`, no trailing slash; the `iss` of every token. */
  readonly issuer: string;
  /** `${issuer}/.well-known/openid-configuration` */
  readonly discoveryUrl: string;
  /** The `jwks_uri` advertised in discovery. */
  readonly jwksUri: string;
  /**
   * Every private key whose public half is in the JWKS, the one tokens are signed with first, so tests can
   * forge tokens signed by a genuine key (expired, wrong `aud`, ...).
   */
  readonly signingKeys: ReadonlyArray<TestIdpSigningKey>;
  /**
   * A user access token (JWT, `typ: at+jwt`) obtained through the authorization-code + PKCE flow, driven over HTTP
   * through oidc-provider's dev interactions (login, consent), then exchanged with `resource=audience`, so `aud` is
   * the audience. `claims` become extra top-level claims; they never override registered ones (`sub`, `aud`, ...).
   */
  userAccessToken(options: {
    sub: string;
    audience: string;
    scope?: string;
    claims?: Record<string, unknown>;
    clientId?: string;
  }): Promise<string>;
  /** A client-credentials access token (JWT, `sub` = client id) for a registered client (`test-app`, `other-app`). */
  clientCredentialsToken(options: { audience: string; scope?: string; clientId?: string }): Promise<string>;
  /**
   * Signs future tokens with a fresh key (new kid). The old key stays in the JWKS unless `dropOld`.
   * Swaps the Provider behind the same HTTP server, so sessions and grants of the old one are gone.
   */
  rotateSigningKey(options?: { dropOld?: boolean }): Promise<void>;
  /** How the JWKS endpoint answers from now on: normally, `down` (connection reset), `slow` (after `delayMs`), `html` (200 text/html). */
  setJwksBehaviour(behaviour: JwksBehaviour): void;
  /** How many times the JWKS URI was requested, whatever the behaviour. */
  readonly jwksRequestCount: number;
  /** The path (without query) of every request the server saw, in order. */
  readonly requests: readonly string[];
  stop(): Promise<void>;
}

const REDIRECT_URI = 'http://127.0.0.1/callback';
const CLIENTS = ['test-app', 'other-app'].map((id): ClientMetadata => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['authorization_code', 'client_credentials'],
  response_types: ['code'],
  redirect_uris: [REDIRECT_URI],
}));
const TTL_SECONDS = 600;

type SigningKeyPair = TestIdpSigningKey & { privateJwk: JWK };

async function newSigningKey(alg: SigningAlg): Promise<SigningKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  const meta = { kid, alg, use: 'sig' };
  const [publicJwk, privateJwk] = await Promise.all([exportJWK(publicKey), exportJWK(privateKey)]);
  return { kid, alg, privateKey, publicJwk: { ...publicJwk, ...meta }, privateJwk: { ...privateJwk, ...meta } };
}

function clientSecret(clientId: string): string {
  return CLIENTS.find((client) => client.client_id === clientId)?.client_secret ?? 'unregistered';
}

function basicAuth(clientId: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret(clientId))}`).toString('base64')}`;
}

async function accessTokenFrom(response: Response): Promise<string> {
  const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
  if (!response.ok || !body.access_token) {
    throw new Error(`test IdP: token endpoint answered ${response.status}: ${body.error ?? ''} ${body.error_description ?? ''}`);
  }
  return body.access_token;
}

/** Starts a test IdP on a free port of 127.0.0.1. Stop it with {@link TestIdp.stop}. */
export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const alg = options.alg ?? 'RS256';
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const cookieKeys = [randomBytes(32).toString('base64url')];
  // A resource server accepts every scope ever asked for it: the token endpoint asks again when the code is exchanged,
  // and by then the request carries no scope.
  const scopesByResource = new Map<string, Set<string>>();
  const claimsByCode = new Map<string, Record<string, unknown>>();

  let active = await newSigningKey(alg);
  let retired: SigningKeyPair[] = [];
  const companion = await newSigningKey(alg === 'RS256' ? 'ES256' : 'RS256');

  const configuration = (): Configuration => ({
    clients: CLIENTS,
    jwks: { keys: [active.privateJwk, companion.privateJwk, ...retired.map((key) => key.privateJwk)] },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    // Explicit TTLs, because each default one prints a notice the first time it is used.
    ttl: {
      AccessToken: TTL_SECONDS,
      AuthorizationCode: TTL_SECONDS,
      ClientCredentials: TTL_SECONDS,
      Grant: TTL_SECONDS,
      IdToken: TTL_SECONDS,
      Interaction: TTL_SECONDS,
      Session: TTL_SECONDS,
    },
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    extraTokenClaims: (ctx: KoaContextWithOIDC) => {
      const code = ctx.oidc.params?.['code'];
      return typeof code === 'string' ? claimsByCode.get(code) : undefined;
    },
    renderError: (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx: KoaContextWithOIDC, resource: string) => {
          const scopes = scopesByResource.get(resource) ?? new Set<string>();
          scopesByResource.set(resource, scopes);
          const asked = ctx.oidc.params?.['scope'];
          for (const scope of typeof asked === 'string' ? asked.split(' ') : []) if (scope && scope !== 'openid') scopes.add(scope);
          return {
            scope: [...scopes].join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: TTL_SECONDS,
            jwt: { sign: { alg: active.alg, kid: active.kid } },
          };
        },
      },
    },
  });

  const newProvider = () => {
    // oidc-provider warns on construction about its development-only conveniences (dev interactions, memory adapter),
    // which are exactly what a test IdP wants; construction is synchronous, so nothing else is muted.
    const { warn, info } = console;
    console.warn = console.info = () => undefined;
    try {
      const provider = new Provider(issuer, configuration());
      return { provider, handle: provider.callback() };
    } finally {
      Object.assign(console, { warn, info });
    }
  };

  let current = newProvider();
  const jwksPath = new URL(current.provider.urlFor('jwks')).pathname;
  let jwksBehaviour: JwksBehaviour = { mode: 'normal' };
  let jwksRequestCount = 0;
  const requests: string[] = [];

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    requests.push(path);
    const { handle } = current;
    if (path !== jwksPath) return void handle(req, res);
    jwksRequestCount += 1;
    const behaviour = jwksBehaviour;
    switch (behaviour.mode) {
      case 'normal':
        return void handle(req, res);
      case 'down':
        return void req.socket.resetAndDestroy();
      case 'slow': {
        const timer = setTimeout(() => void handle(req, res), behaviour.delayMs);
        res.once('close', () => clearTimeout(timer));
        return;
      }
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return void res.end('<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });

  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    jwksUri: current.provider.urlFor('jwks'),
    get signingKeys() {
      return [active, companion, ...retired].map(({ kid, alg, privateKey, publicJwk }) => ({ kid, alg, privateKey, publicJwk }));
    },
    get jwksRequestCount() {
      return jwksRequestCount;
    },
    get requests() {
      return [...requests];
    },

    async userAccessToken({ sub, audience, scope, claims, clientId = 'test-app' }) {
      const cookies = new Map<string, string>();
      const request = async (url: string, form?: Record<string, string>): Promise<Response> => {
        const response = await fetch(new URL(url, issuer), {
          method: form ? 'POST' : 'GET',
          redirect: 'manual',
          headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
          ...(form ? { body: new URLSearchParams(form) } : {}),
        });
        for (const cookie of response.headers.getSetCookie()) {
          const [name = '', value = ''] = (cookie.split(';')[0] ?? '').split('=', 2);
          if (value) cookies.set(name, value);
          else cookies.delete(name);
        }
        return response;
      };
      const redirect = async (url: string, form?: Record<string, string>): Promise<string> => {
        const response = await request(url, form);
        const location = response.headers.get('location');
        if (!location) throw new Error(`test IdP: ${url} answered ${response.status} without a redirect: ${await response.text()}`);
        return location;
      };

      const verifier = randomBytes(32).toString('base64url');
      const state = randomBytes(8).toString('hex');
      const authorization = new URL(current.provider.urlFor('authorization'));
      authorization.search = new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: ['openid', scope].filter(Boolean).join(' '),
        resource: audience,
        state,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString();
      let location = await redirect(authorization.href);
      // Like a browser: each prompt (login, then consent) is a page whose form, once submitted, resumes the authorization.
      for (let hops = 0; !location.startsWith(REDIRECT_URI); hops += 1) {
        if (hops > 10) throw new Error(`test IdP: the authorization flow did not end (last at ${location})`);
        if (!/\/interaction\/[^/]+$/.test(location)) {
          location = await redirect(location);
          continue;
        }
        const prompt = /name="prompt" value="(\w+)"/.exec(await (await request(location)).text())?.[1] ?? 'unknown';
        location = await redirect(location, prompt === 'login' ? { prompt, login: sub } : { prompt });
      }
      const callback = new URL(location).searchParams;
      const code = callback.get('code');
      if (!code || callback.get('state') !== state) throw new Error(`test IdP: authorization failed: ${location}`);

      if (claims) claimsByCode.set(code, claims);
      try {
        const response = await fetch(current.provider.urlFor('token'), {
          method: 'POST',
          headers: { authorization: basicAuth(clientId) },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code,
            redirect_uri: REDIRECT_URI,
            code_verifier: verifier,
            resource: audience,
          }),
        });
        return await accessTokenFrom(response);
      } finally {
        claimsByCode.delete(code);
      }
    },

    async clientCredentialsToken({ audience, scope, clientId = 'test-app' }) {
      const response = await fetch(current.provider.urlFor('token'), {
        method: 'POST',
        headers: { authorization: basicAuth(clientId) },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience, ...(scope ? { scope } : {}) }),
      });
      return accessTokenFrom(response);
    },

    async rotateSigningKey({ dropOld = false } = {}) {
      const next = await newSigningKey(alg);
      retired = dropOld ? [] : [active, ...retired];
      active = next;
      current = newProvider();
    },

    setJwksBehaviour(behaviour) {
      jwksBehaviour = behaviour;
    },

    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
