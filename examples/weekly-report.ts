import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { BusClient } from '@mandate/bus/client';
import { jobCreateEndpoint, providerCreateEndpoint, workloadCreateEndpoint } from '@mandate/contracts';

/** The OAuth client the reporting API trusts (its client-credentials grant gives the agent its token). */
export interface ReportingClient {
  discoveryUrl: string;
  clientId: string;
  clientSecret: string;
  /** The reporting API's identifier, asked for as the token's audience (RFC 8707 `resource`). */
  audience: string;
}

/**
 * The weekly report, end to end with Mandate: a background agent with its own identity (a
 * workload and its key), an M2M credential provider it alone may use, and a job that every
 * Wednesday at 20:00 Berlin time gets a token as that workload and posts to the reporting API.
 * Nobody is present; nobody's consent is involved (two-legged OAuth).
 */
export async function setUpWeeklyReport(bus: BusClient, options: { tenant: string; reportingUrl: string; client: ReportingClient }): Promise<{ privateJwk: JWK }> {
  const { tenant, client } = options;
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'weekly-report-1', alg: 'ES256' };
  const privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'weekly-report-1', alg: 'ES256' };

  await bus.request(workloadCreateEndpoint, { tenant, name: 'weekly-report-agent', description: 'Posts the weekly sales report', publicKeys: { keys: [publicJwk as never] } });
  await bus.request(providerCreateEndpoint, {
    kind: 'oauth2',
    tenant,
    name: 'reporting',
    vendor: 'custom',
    discoveryUrl: client.discoveryUrl,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    tokenParameters: { resource: client.audience },
    allowedWorkloads: ['weekly-report-agent'],
  });
  await bus.request(jobCreateEndpoint, {
    tenant,
    name: 'weekly-report',
    description: 'Every Wednesday 20:00 Europe/Berlin',
    workload: { name: 'weekly-report-agent', privateJwk: privateJwk as never },
    trigger: { kind: 'cron', expression: '0 20 * * 3', timeZone: 'Europe/Berlin' },
    action: { kind: 'http', method: 'POST', url: `${options.reportingUrl}/reports`, provider: 'reporting', scopes: ['reports:write'] },
    missedFire: 'run-once',
    retry: { limit: 3, backoffMs: 60_000, maxBackoffMs: 600_000 },
  });
  return { privateJwk };
}
