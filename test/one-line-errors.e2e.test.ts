import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauth2TokenEndpoint, providerCreateEndpoint } from '@mandate/contracts';
import { MandateClient } from '@mandate/sdk';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';

/*
 * Errors that say what happened, in one line a person can act on: the SDK with NATS down, a
 * provider's token endpoint that answered an error, "My access" opened without a tenant.
 */

const missing = natsServerMissing('errors that say what happened');

describe('MandateClient.connect with NATS down', () => {
  it('throws a MandateError unavailable naming the URL, never its password', async () => {
    const servers = `nats://agent:hunter2@127.0.0.1:${await freePort()}`;
    const error = await failure(MandateClient.connect({ servers, tenant: 'acme', workload: 'report-agent' }));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/^cannot reach NATS at nats:\/\/\*\*\*@127\.0\.0\.1:\d+/);
    expect(error.message).not.toContain('hunter2');
  });
});

describe.skipIf(missing)('errors of the vault and the consent pages', { timeout: 60_000 }, () => {
  let h: TestSystem;
  let provider: Server;
  let providerUrl: string;
  let consentUrl: string;

  beforeAll(async () => {
    // A token endpoint that answers 500 with an HTML page, as a provider's broken proxy does.
    provider = createServer((_request, response) => response.writeHead(500, { 'content-type': 'text/html' }).end('<h1>Internal Server Error</h1>'));
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    providerUrl = `http://127.0.0.1:${(provider.address() as { port: number }).port}`;
    const consentPort = await freePort();
    consentUrl = `http://127.0.0.1:${consentPort}`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'consent'], env: { CONSENT_HTTP_PORT: String(consentPort), CONSENT_PUBLIC_URL: consentUrl, CONSENT_BASE_URL: consentUrl } });
  });

  afterAll(async () => {
    await h?.stop();
    await new Promise((resolve) => provider?.close(resolve));
  });

  it('reports a provider token endpoint that answered 500 as answering 500, not as unreachable', async () => {
    const key = await h.workload('report-agent');
    const wat = await h.machineWat('report-agent', key);
    const create = (name: string, tokenEndpoint: string) =>
      h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name, vendor: 'custom', metadata: { tokenEndpoint }, clientId: 'c', clientSecret: 's', allowedWorkloads: ['report-agent'] });
    await create('broken', `${providerUrl}/token`);
    const answered = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'broken', flow: 'M2M' }));
    expect(answered.code).toBe('provider_error');
    expect(answered.message).toBe('the provider answered the client credentials request with HTTP 500');
    expect(answered.details).toEqual({ providerStatus: 500 });
    expect(answered.message).not.toContain('Internal Server Error');

    // Nobody listening is still "could not be reached".
    await create('gone', `http://127.0.0.1:${await freePort()}/token`);
    const unreachable = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'gone', flow: 'M2M' }));
    expect(unreachable.message).toBe('the provider could not be reached for client credentials');
  });

  it('"My access" without a tenant says how to write its address', async () => {
    for (const query of ['', '?tenant=', '?tenant=Not%20A%20Tenant']) {
      const response = await fetch(`${consentUrl}/access${query}`);
      expect(response.status).toBe(400);
      // The page escapes `=` as `&#61;`.
      const page = (await response.text()).replaceAll('&#61;', '=');
      expect(page).toContain('add ?tenant= and its tenant id, e.g. /access?tenant=default');
    }
    // With a tenant, the page asks the person to sign in as before.
    expect((await fetch(`${consentUrl}/access?tenant=acme`)).status).not.toBe(400);
  });
});
