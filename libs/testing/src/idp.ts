import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { decodeJwt, SignJWT, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { ClientMetadata, KoaContextWithOIDC } from 'oidc-provider';
import {
  basicAuthorization,
  createAuthorizationServer,
  newSigningKey,
  readTokenResponse,
  signInWithAuthorizationCode,
  type SigningAlg,
  type SigningKey,
  type SigningKeyPair,
} from '@mandate/demo';
import { freePort } from './nats-server.js';

/** Options for {@link startTestIdp}. */
export interface TestIdpOptions {
  /** Algorithm access tokens are signed with (default `RS256`); a key for the other one is published as well. */
  alg?: SigningAlg;
  /** Lifetime of every access token, user or client credentials, in seconds (default 600): the `expires_in` and `exp`. */
  accessTokenTtlSeconds?: number;
  /** More redirect URIs for `test-app` and `other-app` (e.g. a consent service's `/callback`), matched exactly. */
  redirectUris?: string[];
  /** More clients, e.g. the consent service's public sign-in client (`token_endpoint_auth_method: 'none'`). */
  extraClients?: ClientMetadata[];
}

/** A private signing key of the test IdP, with the public half as published in its JWKS. */
export type TestIdpSigningKey = SigningKey;

/** How the JWKS endpoint answers; see {@link TestIdp.setJwksBehaviour}. */
export type JwksBehaviour = { mode: 'normal' } | { mode: 'down' } | { mode: 'slow'; delayMs: number } | { mode: 'html' };

/** How the token endpoint answers; see {@link TestIdp.setTokenEndpointBehaviour}. */
export type TokenEndpointBehaviour = { mode: 'normal' } | { mode: 'slow'; delayMs: number } | { mode: 'down' };

/** One POST to the token endpoint, as seen by {@link TestIdp.tokenRequests}. */
export interface TokenRequestRecord {
  /** The `grant_type` of the form body, `''` when there was none. */
  grantType: string;
  /**
   * The client the request claimed to be, authenticated or not: the Basic auth user, else the body's `client_id`,
   * else the `sub` of its `client_assertion`.
   */
  clientId: string | undefined;
  /** The HTTP status of the response; `0` when none was sent (endpoint `down`, or the caller gave up while it was `slow`). */
  status: number;
}

/** The tokens of a user grant; see {@link TestIdp.userTokens}. */
export interface TestIdpUserTokens {
  /** JWT access token (`typ: at+jwt`) whose `aud` is the requested audience. */
  accessToken: string;
  /** Opaque refresh token, rotated on every use: a used one is then rejected with `invalid_grant`. */
  refreshToken: string;
  /** The token response's `expires_in`, in seconds. */
  expiresIn: number;
  /** The token response's `scope` (space-separated; `''` when the response had none). */
  scope: string;
}

/**
 * A real OpenID Provider (oidc-provider, configured as `mandate demo`'s, `@mandate/demo`) on a free loopback port,
 * where anyone signs in by name, with knobs for failure tests.
 */
export interface TestIdp {
  /** `http://127.0.0.1:<port>`, no trailing slash; the `iss` of every token. */
  readonly issuer: string;
  /** `${issuer}/.well-known/openid-configuration` */
  readonly discoveryUrl: string;
  /** The `jwks_uri` advertised in discovery. */
  readonly jwksUri: string;
  /** The `token_endpoint` advertised in discovery. */
  readonly tokenEndpoint: string;
  /** The `revocation_endpoint` (RFC 7009) advertised in discovery. */
  readonly revocationEndpoint: string;
  /**
   * Every private key whose public half is in the JWKS, the one tokens are signed with first, so tests can
   * forge tokens signed by a genuine key (expired, wrong `aud`, ...).
   */
  readonly signingKeys: ReadonlyArray<TestIdpSigningKey>;
  /**
   * The private key (ES256 JWK, with `kid` and `alg`) of client `jwt-client`, which authenticates with
   * `private_key_jwt`: sign its `client_assertion` with it (`iss` = `sub` = `jwt-client`, `aud` = the issuer or the
   * token endpoint, `exp`, unique `jti`).
   */
  readonly jwtClientKey: JWK;
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
  /**
   * Like {@link TestIdp.userAccessToken}, but returns the whole token response, refresh token included. Refresh it at
   * {@link TestIdp.tokenEndpoint} with `grant_type=refresh_token` and client_secret_basic (`<client>`/`<client>-secret`);
   * `resource` may be sent and must then be the same audience (without it the granted one is used: still a JWT for the
   * audience), `scope` may narrow the scope. Each refresh returns a new refresh token (and an `id_token`) and keeps
   * `claims`; presenting a used one fails with `invalid_grant` and revokes the whole grant, as oidc-provider treats it
   * as stolen. Clients: `test-app` (default), `other-app`.
   */
  userTokens(options: {
    sub: string;
    audience: string;
    scope?: string;
    clientId?: string;
    claims?: Record<string, unknown>;
  }): Promise<TestIdpUserTokens>;
  /**
   * Revokes a refresh token at the real revocation endpoint, authenticated as the client it was issued to. oidc-provider
   * revokes the whole grant: any refresh token of it then fails with `invalid_grant`; JWT access tokens already issued
   * stay valid until they expire. Unknown tokens are accepted silently (RFC 7009).
   */
  revokeRefreshToken(refreshToken: string): Promise<void>;
  /**
   * A client-credentials access token (JWT, `sub` = client id) for a registered client: `test-app` (default),
   * `other-app`, `m2m-client` (client_secret_basic), or `jwt-client` (authenticated with a fresh `private_key_jwt`
   * assertion signed with {@link TestIdp.jwtClientKey}).
   */
  clientCredentialsToken(options: { audience: string; scope?: string; clientId?: string }): Promise<string>;
  /**
   * Signs future tokens with a fresh key (new kid). The old key stays in the JWKS unless `dropOld`.
   * Swaps the Provider behind the same HTTP server, so sessions and grants of the old one are gone: refresh tokens
   * issued before fail with `invalid_grant` (counters and endpoint behaviours are kept).
   */
  rotateSigningKey(options?: { dropOld?: boolean }): Promise<void>;
  /** How the JWKS endpoint answers from now on: normally, `down` (connection reset), `slow` (after `delayMs`), `html` (200 text/html). */
  setJwksBehaviour(behaviour: JwksBehaviour): void;
  /**
   * How the token endpoint answers POSTs from now on: normally, `down` (the request is read, then the connection is
   * reset) or `slow` (handled after `delayMs`; if the caller gives up first, the request is never handled).
   * Every POST is recorded in {@link TestIdp.tokenRequests} whatever the behaviour.
   */
  setTokenEndpointBehaviour(behaviour: TokenEndpointBehaviour): void;
  /** How many times the JWKS URI was requested, whatever the behaviour. */
  readonly jwksRequestCount: number;
  /** Every POST to the token endpoint, in the order they were answered (or dropped); a snapshot. */
  readonly tokenRequests: ReadonlyArray<TokenRequestRecord>;
  /** How many POSTs the revocation endpoint received. */
  readonly revocationRequests: number;
  /** The path (without query) of every request the server saw, in order. */
  readonly requests: readonly string[];
  /** Closes the server and every open connection. */
  stop(): Promise<void>;
}

const REDIRECT_URI = 'http://127.0.0.1/callback';
const JWT_CLIENT_ID = 'jwt-client';
const SECRET_CLIENTS: ClientMetadata[] = [
  ...['test-app', 'other-app'].map((id): ClientMetadata => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  })),
  { client_id: 'm2m-client', client_secret: 'm2m-client-secret', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
];

const secretOf = (clientId: string) => SECRET_CLIENTS.find((client) => client.client_id === clientId)?.client_secret ?? 'unregistered';
const basicAuth = (clientId: string) => basicAuthorization(clientId, secretOf(clientId));

/** The client a token request claims to be: Basic auth user, else body `client_id`, else `sub` of `client_assertion`. */
function claimedClientId(authorization: string | undefined, form: Record<string, unknown>): string | undefined {
  const basic = /^basic\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  if (basic) {
    const user = Buffer.from(basic, 'base64').toString('utf8').split(':')[0] ?? '';
    try {
      return decodeURIComponent(user);
    } catch {
      return user;
    }
  }
  if (typeof form['client_id'] === 'string') return form['client_id'];
  const assertion = form['client_assertion'];
  if (typeof assertion !== 'string') return undefined;
  try {
    return decodeJwt(assertion).sub;
  } catch {
    return undefined;
  }
}

function parseForm(body: Buffer | undefined): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(body?.toString('utf8') ?? ''));
}

/** Reads a form body nobody else will read; `{}` when it cannot be had (connection already gone, ...). */
async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return parseForm(Buffer.concat(chunks));
  } catch {
    return {};
  }
}

/**
 * Reads a form body without consuming it: once the whole request has arrived, its bytes are taken from the stream's
 * buffer and put straight back (`unshift`), so oidc-provider still parses the untouched stream later. Resolves `{}`,
 * leaving the stream alone, if the request fails first or its body does not fit the stream's buffer (16 KiB; token
 * requests are far smaller).
 */
function peekForm(req: IncomingMessage): Promise<Record<string, string>> {
  return new Promise((resolve) => {
    const finish = (body?: Buffer) => {
      req.off('readable', onReadable).off('error', onError);
      if (body) req.unshift(body);
      resolve(parseForm(body));
    };
    const onReadable = () => {
      if (req.complete) finish(req.readableLength > 0 ? (req.read() as Buffer) : undefined);
      else if (req.readableLength >= req.readableHighWaterMark) finish();
    };
    const onError = () => finish();
    req.on('readable', onReadable).on('error', onError);
  });
}

const tokenResponse = (response: Response) => readTokenResponse(response, 'test IdP');

/** Starts a test IdP on a free port of 127.0.0.1. Stop it with {@link TestIdp.stop}. */
export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const alg = options.alg ?? 'RS256';
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const cookieKeys = [randomBytes(32).toString('base64url')];
  // Extra claims are handed over per authorization code, then kept per grant so refreshed access tokens carry them too.
  const claimsByCode = new Map<string, Record<string, unknown>>();
  const claimsByGrant = new Map<string, Record<string, unknown>>();

  let active = await newSigningKey(alg);
  let retired: SigningKeyPair[] = [];
  const companion = await newSigningKey(alg === 'RS256' ? 'ES256' : 'RS256');
  const jwtClient = await newSigningKey('ES256');
  const jwtClientMetadata: ClientMetadata = {
    client_id: JWT_CLIENT_ID,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: jwtClient.alg,
    jwks: { keys: [jwtClient.publicJwk] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };

  let jwksBehaviour: JwksBehaviour = { mode: 'normal' };
  let tokenBehaviour: TokenEndpointBehaviour = { mode: 'normal' };
  let jwksRequestCount = 0;
  let revocationRequests = 0;
  const tokenRequests: TokenRequestRecord[] = [];
  const requests: string[] = [];

  const newProvider = () => {
    const provider: Provider = createAuthorizationServer({
      issuer,
      signingKeys: [active, companion, ...retired],
      clients: [
        ...SECRET_CLIENTS.map((client) =>
          client.grant_types?.includes('authorization_code') ? { ...client, redirect_uris: [...(client.redirect_uris ?? []), ...(options.redirectUris ?? [])] } : client,
        ),
        jwtClientMetadata,
        ...(options.extraClients ?? []),
      ],
      cookieKeys,
      signIn: 'anyone',
      ...(options.accessTokenTtlSeconds ? { accessTokenTtlSeconds: options.accessTokenTtlSeconds } : {}),
      extraTokenClaims: (ctx: KoaContextWithOIDC, token) => {
        if (!('grantId' in token) || !token.grantId) return undefined;
        const code = ctx.oidc.params?.['code'];
        const handedOver = typeof code === 'string' ? claimsByCode.get(code) : undefined;
        if (handedOver) claimsByGrant.set(token.grantId, handedOver);
        return claimsByGrant.get(token.grantId);
      },
    });
    // Token requests that reach oidc-provider are recorded once it has parsed the body and answered.
    provider.use(async (ctx, next) => {
      await next();
      const { oidc } = ctx as Partial<KoaContextWithOIDC>;
      if (ctx.method !== 'POST' || oidc?.route !== 'token') return;
      const form = oidc.body ?? {};
      const grantType = typeof form['grant_type'] === 'string' ? form['grant_type'] : '';
      tokenRequests.push({ grantType, clientId: claimedClientId(ctx.get('authorization'), form), status: ctx.status });
    });
    return { provider, handle: provider.callback() };
  };

  let current = newProvider();
  const jwksUri = current.provider.urlFor('jwks');
  const tokenEndpoint = current.provider.urlFor('token');
  const revocationEndpoint = current.provider.urlFor('revocation');
  const [jwksPath, tokenPath, revocationPath] = [jwksUri, tokenEndpoint, revocationEndpoint].map((url) => new URL(url).pathname);

  /** A token request oidc-provider never saw: recorded from its body, without a status. */
  const recordUnanswered = (req: IncomingMessage, form: Record<string, string>) => {
    tokenRequests.push({ grantType: form['grant_type'] ?? '', clientId: claimedClientId(req.headers.authorization, form), status: 0 });
  };

  /** Handles the request after `delayMs`, once `ready`; never, if the caller gives up first (then calls `onDropped`). */
  const serveSlowly = (delayMs: number, req: IncomingMessage, res: ServerResponse, ready: Promise<unknown> = Promise.resolve(), onDropped?: () => void) => {
    let handled = false;
    const timer = setTimeout(() => {
      void ready.then(() => {
        if (res.destroyed) return;
        handled = true;
        void current.handle(req, res);
      });
    }, delayMs);
    res.once('close', () => {
      if (handled) return;
      clearTimeout(timer);
      onDropped?.();
    });
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    requests.push(path);
    const { handle } = current;
    if (path === jwksPath) {
      jwksRequestCount += 1;
      const behaviour = jwksBehaviour;
      switch (behaviour.mode) {
        case 'normal':
          return void handle(req, res);
        case 'down':
          return void req.socket.resetAndDestroy();
        case 'slow':
          return serveSlowly(behaviour.delayMs, req, res);
        case 'html':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          return void res.end('<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>');
      }
    }
    if (req.method === 'POST' && path === revocationPath) revocationRequests += 1;
    if (req.method !== 'POST' || path !== tokenPath) return void handle(req, res);
    const behaviour = tokenBehaviour;
    switch (behaviour.mode) {
      case 'normal':
        return void handle(req, res);
      case 'down':
        return void readForm(req).then((form) => {
          recordUnanswered(req, form);
          req.socket.resetAndDestroy();
        });
      case 'slow': {
        // The body is peeked at now, while it can still be had: once the caller gives up, the request is gone.
        const form = peekForm(req);
        return serveSlowly(behaviour.delayMs, req, res, form, () => void form.then((peeked) => recordUnanswered(req, peeked)));
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });

  const postToken = (form: Record<string, string>, authorization?: string) =>
    fetch(tokenEndpoint, { method: 'POST', ...(authorization ? { headers: { authorization } } : {}), body: new URLSearchParams(form) });

  const clientAuthentication = async (clientId: string): Promise<{ authorization?: string; form: Record<string, string> }> => {
    if (clientId !== JWT_CLIENT_ID) return { authorization: basicAuth(clientId), form: {} };
    const assertion = await new SignJWT()
      .setProtectedHeader({ alg: jwtClient.alg, kid: jwtClient.kid })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(tokenEndpoint)
      .setIssuedAt()
      .setExpirationTime('1m')
      .setJti(randomUUID())
      .sign(jwtClient.privateKey);
    return { form: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion } };
  };

  const authorizationCodeTokens = async ({
    sub,
    audience,
    scope,
    claims,
    clientId = 'test-app',
  }: {
    sub: string;
    audience: string;
    scope?: string;
    claims?: Record<string, unknown>;
    clientId?: string;
  }) => {
    let issuedCode: string | undefined;
    try {
      return await signInWithAuthorizationCode({
        authorizationEndpoint: current.provider.urlFor('authorization'),
        tokenEndpoint,
        clientId,
        clientSecret: secretOf(clientId),
        redirectUri: REDIRECT_URI,
        login: sub,
        ...(scope ? { scope } : {}),
        resource: audience,
        onCode: (code) => {
          issuedCode = code;
          if (claims) claimsByCode.set(code, claims);
        },
      });
    } finally {
      if (issuedCode) claimsByCode.delete(issuedCode);
    }
  };

  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    jwksUri,
    tokenEndpoint,
    revocationEndpoint,
    jwtClientKey: jwtClient.privateJwk,
    get signingKeys() {
      return [active, companion, ...retired].map(({ kid, alg, privateKey, publicJwk }) => ({ kid, alg, privateKey, publicJwk }));
    },
    get jwksRequestCount() {
      return jwksRequestCount;
    },
    get tokenRequests() {
      return tokenRequests.map((record) => ({ ...record }));
    },
    get revocationRequests() {
      return revocationRequests;
    },
    get requests() {
      return [...requests];
    },

    async userAccessToken(options) {
      return (await authorizationCodeTokens(options)).access_token;
    },

    async userTokens(options) {
      const body = await authorizationCodeTokens(options);
      if (!body.refresh_token) throw new Error(`test IdP: no refresh token was issued to ${options.clientId ?? 'test-app'}`);
      return { accessToken: body.access_token, refreshToken: body.refresh_token, expiresIn: body.expires_in ?? 0, scope: body.scope ?? '' };
    },

    async revokeRefreshToken(refreshToken) {
      const issuedTo = (await current.provider.RefreshToken.find(refreshToken))?.clientId ?? 'test-app';
      const response = await fetch(revocationEndpoint, {
        method: 'POST',
        headers: { authorization: basicAuth(issuedTo) },
        body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' }),
      });
      if (!response.ok) throw new Error(`test IdP: revocation endpoint answered ${response.status}: ${await response.text()}`);
    },

    async clientCredentialsToken({ audience, scope, clientId = 'test-app' }) {
      const { authorization, form } = await clientAuthentication(clientId);
      const request = { ...form, grant_type: 'client_credentials', resource: audience, ...(scope ? { scope } : {}) };
      return (await tokenResponse(await postToken(request, authorization))).access_token;
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

    setTokenEndpointBehaviour(behaviour) {
      tokenBehaviour = behaviour;
    },

    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
