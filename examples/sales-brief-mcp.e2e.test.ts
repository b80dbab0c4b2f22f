import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayCreateEndpoint, providerCreateEndpoint, targetAddEndpoint } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { salesBriefThroughGateway } from './sales-brief-mcp.js';

const missing = natsServerMissing('the sales brief through the gateway');

describe.skipIf(missing)('example: the sales brief through the tool gateway (MCP)', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let tools: SampleToolServer;
  let gatewayUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    gatewayUrl = `${publicUrl}/mcp/examples/sales`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, tools] = await Promise.all([startTestIdp(), startSampleToolServer()]);
    const key: JWK = await h.workload('sales-gateway', { tenant: 'examples' });
    await h.setAuthorizer('examples', 'sales-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [gatewayUrl], allowedScopes: ['crm.read', 'finance.read'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'examples', name: 'sales-tools', apiKey: 'demo-sales-tools-key', allowedWorkloads: ['sales-gateway'] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'examples', name: 'sales', workload: { name: 'sales-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer], scopesSupported: ['crm.read', 'finance.read'] });
    await h.bus.request(targetAddEndpoint, {
      tenant: 'examples',
      gateway: 'sales',
      target: {
        name: 'sales-tools',
        source: { kind: 'mcp', url: tools.url },
        credential: { kind: 'api-key', provider: 'sales-tools' },
        defaultScopes: ['crm.read'],
        bindings: [{ tool: 'finance_spend', requiredScopes: ['finance.read'] }],
      },
    });
  });

  afterAll(async () => {
    await h?.stop();
    await Promise.all([idp?.stop(), tools?.stop()]);
  });

  it('writes the brief from the tools Sarah may use, and leaves out what Bob may not see', async () => {
    const sarah = await idp.userAccessToken({ sub: 'sarah', audience: gatewayUrl, scope: 'crm.read finance.read' });
    expect(await salesBriefThroughGateway({ gatewayUrl, userToken: sarah, account: 'acc-1' })).toBe(
      ['Brief for acc-1:', '- Renewal in March', '- Wants the analytics add-on', 'Spend this year: 182400 EUR', 'Documents: Globex MSA.pdf'].join('\n'),
    );
    const bob = await idp.userAccessToken({ sub: 'bob', audience: gatewayUrl, scope: 'crm.read' });
    expect(await salesBriefThroughGateway({ gatewayUrl, userToken: bob, account: 'acc-1' })).toContain('Spend: not available to you');
    expect(tools.requests.every((request) => request.authorization === 'Bearer demo-sales-tools-key')).toBe(true);
  });
});
