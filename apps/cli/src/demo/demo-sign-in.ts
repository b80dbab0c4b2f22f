import * as oauth from 'oauth4webapi';
import { DEMO_PASSWORD, DEMO_USERS, demoUser, signInWithAuthorizationCode } from '@mandate/demo';
import { EXIT } from '../bus.js';
import { CliError } from '../output.js';
import { SALES_APP } from './demo-plan.js';

/*
 * `mandate demo sign-in <user>`: a demo user's access token from the running demo IdP, as the
 * sales app gets it when they sign in there (authorization code with PKCE, through the same
 * sign-in page a browser shows, with the demo password). The token goes to stdout alone, so
 * `$(mandate demo sign-in sarah)` works.
 */

export interface SignInOptions {
  idpUrl: string;
  audience: string;
  scope?: string[];
}

async function endpointsOf(idpUrl: string): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(idpUrl);
  try {
    const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.allowInsecureRequests]: issuer.protocol === 'http:', signal: AbortSignal.timeout(5_000) });
    return await oauth.processDiscoveryResponse(issuer, response);
  } catch (cause) {
    throw new CliError(`cannot reach the demo IdP at ${idpUrl} (${cause instanceof Error ? cause.message : String(cause)}). Is \`mandate demo\` running? (--idp-url moves it)`, EXIT.unavailable);
  }
}

export async function demoSignIn(login: string, options: SignInOptions): Promise<void> {
  const user = demoUser(login);
  if (!user) throw new CliError(`${login} is not a demo user; the demo IdP has ${DEMO_USERS.map((u) => u.login).join(' and ')}`, EXIT.invalid);
  const server = await endpointsOf(options.idpUrl);
  const tokens = await signInWithAuthorizationCode({
    authorizationEndpoint: server.authorization_endpoint!,
    tokenEndpoint: server.token_endpoint!,
    clientId: SALES_APP.clientId,
    clientSecret: SALES_APP.clientSecret,
    redirectUri: SALES_APP.redirectUri,
    login: user.login,
    password: DEMO_PASSWORD,
    scope: (options.scope ?? user.scopes).join(' '),
    resource: options.audience,
  }).catch((cause: unknown) => {
    throw new CliError(`${login} could not sign in at the demo IdP: ${cause instanceof Error ? cause.message : String(cause)}`);
  });
  process.stdout.write(`${tokens.access_token}\n`);
}
