import { join } from 'node:path';
import type { ClientMetadata } from 'oidc-provider';
import { RESOURCE_AUDIENCES, RESOURCE_SCOPES, type ResourceServerName } from '@mandate/demo';

/*
 * What `mandate demo` sets up, by name: one place for the ports, clients, workloads, providers
 * and the gateway, which the servers, the registrations and the printed commands all follow.
 * Every secret here is a demo one, printed in the docs: nothing of it protects anything real.
 */

/** The fixed ports (docs/cli.md), each moved by its flag. */
export const DEMO_PORTS = { idp: 4510, authServer: 4511, crm: 4512, finance: 4513, documents: 4514 } as const;
export type DemoPortName = keyof typeof DEMO_PORTS;

export const DEMO_PORT_FLAGS: Readonly<Record<DemoPortName, string>> = {
  idp: '--idp-port',
  authServer: '--auth-server-port',
  crm: '--crm-port',
  finance: '--finance-port',
  documents: '--documents-port',
};

/** The default of `--idp-url` of `mandate demo sign-in`, where `mandate demo` runs the demo IdP. */
export const DEFAULT_IDP_URL = `http://127.0.0.1:${DEMO_PORTS.idp}`;

/** The sales app at the demo IdP: what people sign in to, and what their tokens are for. */
export const SALES_APP = { clientId: 'sales-app', clientSecret: 'demo-sales-app-secret', redirectUri: 'http://127.0.0.1/sales-app/callback', audience: 'https://sales-app.demo.example' } as const;
/** Mandate's OAuth2 client at the demo authorization server of the sample APIs: the vault's providers use it. */
export const MANDATE_CLIENT = { clientId: 'mandate', clientSecret: 'demo-mandate-secret' } as const;
/** The API key of the `weather` provider. */
export const DEMO_API_KEY = 'demo-weather-api-key-not-a-secret';

export const AGENT = 'sales-brief-agent';
export const REPORT_AGENT = 'report-agent';
export const GATEWAY_WORKLOAD = 'sales-gateway';
export const GATEWAY = 'sales';
export const WORKLOADS = [AGENT, REPORT_AGENT, GATEWAY_WORKLOAD] as const;
export type DemoWorkload = (typeof WORKLOADS)[number];

/** Every sample API scope, which the gateway supports. */
export const SAMPLE_SCOPES = Object.values(RESOURCE_SCOPES);

/** The sample API whose scopes these are: the audience a token for them is for, when a request names none. */
export function audienceForScopes(scopes: string[]): string | undefined {
  const prefixes: Record<string, ResourceServerName> = { 'crm.': 'crm', 'finance.': 'finance', 'docs.': 'documents' };
  const api = Object.entries(prefixes).find(([prefix]) => scopes.some((scope) => scope.startsWith(prefix)))?.[1];
  return api && RESOURCE_AUDIENCES[api];
}

export interface DemoPlan {
  tenant: string;
  natsUrl: string;
  /** `<data-dir>/demo`: the workloads' keys and the demo servers' signing keys. */
  dir: string;
  consentUrl: string;
  ports: Record<DemoPortName, number>;
  idpUrl: string;
  authServerUrl: string;
  apiUrls: Record<ResourceServerName, string>;
}

export function demoPlan(options: { tenant: string; natsUrl: string; dataDir: string; consentUrl: string; ports: Record<DemoPortName, number> }): DemoPlan {
  const local = (port: number) => `http://127.0.0.1:${port}`;
  return {
    tenant: options.tenant,
    natsUrl: options.natsUrl,
    dir: join(options.dataDir, 'demo'),
    consentUrl: options.consentUrl.replace(/\/+$/, ''),
    ports: options.ports,
    idpUrl: local(options.ports.idp),
    authServerUrl: local(options.ports.authServer),
    apiUrls: { crm: local(options.ports.crm), finance: local(options.ports.finance), documents: local(options.ports.documents) },
  };
}

export function keyFileOf(plan: DemoPlan, workload: DemoWorkload): string {
  return join(plan.dir, 'keys', `${workload}.jwk.json`);
}

/** The demo IdP's clients: the sales app (confidential), and the consent service's sign-in (public, PKCE). */
export function idpClients(plan: DemoPlan): ClientMetadata[] {
  return [
    { client_id: SALES_APP.clientId, client_secret: SALES_APP.clientSecret, client_name: 'the sales app (demo)', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [SALES_APP.redirectUri] },
    { client_id: 'mandate-consent', client_name: 'Mandate consent (demo)', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${plan.consentUrl}/login/callback`] },
  ];
}

/** The demo authorization server's client: Mandate, for people's tokens (consent comes back to `<consent>/callback`) and M2M. */
export function authServerClients(plan: DemoPlan): ClientMetadata[] {
  return [
    {
      client_id: MANDATE_CLIENT.clientId,
      client_secret: MANDATE_CLIENT.clientSecret,
      client_name: 'Mandate (demo)',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: [`${plan.consentUrl}/callback`],
    },
  ];
}
