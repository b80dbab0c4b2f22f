import { randomBytes } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import { HttpListener } from '@mandate/http';
import { createAuthorizationServer } from './authorization-server.js';
import { DEMO_USERS } from './demo-users.js';
import type { SigningKeyPair } from './signing-keys.js';

export interface DemoAuthorizationServerOptions {
  /** Its sign-in pages' title: `Demo IdP`. */
  title: string;
  /** On 127.0.0.1; the issuer is `http://127.0.0.1:<port>`. */
  port: number;
  clients: ClientMetadata[];
  signingKeys: readonly SigningKeyPair[];
  accessTokenTtlSeconds?: number;
  defaultResource?: (scopes: string[]) => string | undefined;
}

export interface DemoAuthorizationServer {
  readonly issuer: string;
  readonly discoveryUrl: string;
  readonly authorizationEndpoint: string;
  readonly tokenEndpoint: string;
  stop(): Promise<void>;
}

/** An authorization server where the demo users sign in, on its own port. */
export async function startDemoAuthorizationServer(options: DemoAuthorizationServerOptions): Promise<DemoAuthorizationServer> {
  const issuer = `http://127.0.0.1:${options.port}`;
  const provider = createAuthorizationServer({
    issuer,
    signingKeys: options.signingKeys,
    clients: options.clients,
    // Sessions need not outlive the process: a restarted demo asks people to sign in again.
    cookieKeys: [randomBytes(32).toString('base64url')],
    signIn: { users: DEMO_USERS, title: options.title },
    ...(options.accessTokenTtlSeconds ? { accessTokenTtlSeconds: options.accessTokenTtlSeconds } : {}),
    ...(options.defaultResource ? { defaultResource: options.defaultResource } : {}),
  });
  const listener = new HttpListener(provider.callback());
  await listener.listen(options.port, '127.0.0.1');
  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    authorizationEndpoint: provider.urlFor('authorization'),
    tokenEndpoint: provider.urlFor('token'),
    stop: () => listener.close(),
  };
}
