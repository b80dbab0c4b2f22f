import Provider, { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { demoUserClaims, type DemoUser } from './demo-users.js';
import type { SigningKeyPair } from './signing-keys.js';
import { signInPages } from './sign-in-pages.js';

/*
 * One OpenID Provider and OAuth2 authorization server, configured on oidc-provider: authorization
 * code with PKCE (required), client credentials, refresh tokens rotated on every use, revocation
 * (RFC 7009), resource indicators (RFC 8707) with JWT access tokens (RFC 9068) for the resource
 * named. `mandate demo` runs two (the demo IdP and the demo authorization server of the sample
 * APIs); the test harness runs it behind knobs for failure tests.
 */

/** Every lifetime that is not the access token's, in seconds. */
const DEFAULT_TTL_SECONDS = 600;
/** Refresh tokens and the grants behind them outlive any test and any demo session. */
const REFRESH_TTL_SECONDS = 24 * 60 * 60;

/** Who signs in, and where. */
export type SignInPolicy =
  /** The demo users, by login name and {@link DEMO_PASSWORD}, on the demo's own sign-in and consent pages titled `title`. */
  | { users: readonly DemoUser[]; title: string }
  /** Anyone, by any login name and no password, on oidc-provider's development pages (the test harness). */
  | 'anyone';

export interface AuthorizationServerOptions {
  /** No trailing slash; the `iss` of every token. */
  issuer: string;
  /** Every key is published in the JWKS; access tokens are signed with the first. */
  signingKeys: readonly SigningKeyPair[];
  clients: ClientMetadata[];
  /** Keys of its session and interaction cookies. */
  cookieKeys: string[];
  signIn: SignInPolicy;
  /** Lifetime of every access token, user or client credentials, in seconds (default 600). */
  accessTokenTtlSeconds?: number;
  /** Extra claims of a token; default: a demo user's claims (name, email, department, groups) in their tokens. */
  extraTokenClaims?: Configuration['extraTokenClaims'];
  /** The resource (RFC 8707 audience) of a request that names none, from the scopes it asks for. */
  defaultResource?: (scopes: string[]) => string | undefined;
}

const requestedScopes = (ctx: KoaContextWithOIDC): string[] => {
  const asked = ctx.oidc.params?.['scope'];
  return typeof asked === 'string' ? asked.split(' ').filter(Boolean) : [];
};

export function createAuthorizationServer(options: AuthorizationServerOptions): Provider {
  const accessTtl = options.accessTokenTtlSeconds ?? DEFAULT_TTL_SECONDS;
  const [signer] = options.signingKeys;
  if (!signer) throw new TypeError('an authorization server needs a signing key');
  const users = options.signIn === 'anyone' ? undefined : options.signIn.users;
  const userByLogin = (login: string) => users?.find((user) => user.login === login);
  // A resource server accepts every scope ever asked for it: the token endpoint asks again when the code is exchanged,
  // and by then the request carries no scope.
  const scopesByResource = new Map<string, Set<string>>();

  const configuration: Configuration = {
    clients: options.clients,
    jwks: { keys: options.signingKeys.map((key) => key.privateJwk) },
    cookies: { keys: options.cookieKeys },
    pkce: { required: () => true },
    // Explicit TTLs, because each default one prints a notice the first time it is used.
    ttl: {
      AccessToken: accessTtl,
      AuthorizationCode: DEFAULT_TTL_SECONDS,
      ClientCredentials: accessTtl,
      Grant: REFRESH_TTL_SECONDS,
      IdToken: DEFAULT_TTL_SECONDS,
      Interaction: DEFAULT_TTL_SECONDS,
      RefreshToken: REFRESH_TTL_SECONDS,
      Session: DEFAULT_TTL_SECONDS,
    },
    // Every code grant of a client allowed `refresh_token` gets one, without `offline_access` (which would need
    // `prompt=consent`), and it outlives the login session; each use replaces it with a new one.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    rotateRefreshToken: true,
    // The ID token carries who the person is and their groups with scope `openid` alone, as a
    // company IdP configured for it does: the approvals page decides by the ID token's `groups`.
    claims: { openid: ['sub', 'name', 'email', 'groups', 'roles'] },
    conformIdTokenClaims: false,
    findAccount: (_ctx, sub) => {
      if (!users) return { accountId: sub, claims: () => ({ sub }) };
      const user = userByLogin(sub);
      return user ? { accountId: sub, claims: () => ({ sub, ...demoUserClaims(user) }) } : undefined;
    },
    extraTokenClaims:
      options.extraTokenClaims ??
      ((_ctx, token) => {
        const user = 'accountId' in token && typeof token.accountId === 'string' ? userByLogin(token.accountId) : undefined;
        return user ? demoUserClaims(user) : undefined;
      }),
    renderError: (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
    ...(users ? { interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` } } : {}),
    features: {
      devInteractions: { enabled: !users },
      clientCredentials: { enabled: true },
      revocation: {
        enabled: true,
        // oidc-provider's default policy, without the notice it prints: a client revokes its own tokens only.
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId !== client.clientId) throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          return true;
        },
      },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        defaultResource: (ctx, _client, oneOf) => oneOf ?? options.defaultResource?.(requestedScopes(ctx)),
        getResourceServerInfo: (ctx, resource) => {
          const scopes = scopesByResource.get(resource) ?? new Set<string>();
          scopesByResource.set(resource, scopes);
          for (const scope of requestedScopes(ctx)) if (scope !== 'openid') scopes.add(scope);
          return {
            scope: [...scopes].join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTtl,
            jwt: { sign: { alg: signer.alg, kid: signer.kid } },
          };
        },
      },
    },
  };

  // oidc-provider warns on construction about its development-only conveniences (dev interactions, the memory
  // adapter), which are what a test or demo server wants; construction is synchronous, so nothing else is muted.
  const { warn, info } = console;
  console.warn = console.info = () => undefined;
  let provider: Provider;
  try {
    provider = new Provider(options.issuer, configuration);
  } finally {
    Object.assign(console, { warn, info });
  }
  if (users && options.signIn !== 'anyone') provider.use(signInPages(provider, { users, title: options.signIn.title }));
  return provider;
}
