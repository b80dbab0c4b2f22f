import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AlwaysOnSampler, InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { gatewayCreateEndpoint, policyAttachEndpoint, policyCreateEndpoint, providerCreateEndpoint, targetAddEndpoint } from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { freePort, natsServerMissing } from '@mandate/testing';
import { allWritten, canariesFound, everySpan, everyStoredMessage } from '@mandate/testing/canary-scan';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type ServiceName, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from '@mandate/vault/testing';

/*
 * Through the gateway, as through the other services: the targets' credentials (an API key, an
 * M2M client secret and the access token it buys, a user's federated tokens: the refresh token the
 * vault keeps and the access tokens it refreshes), the callers' tokens, a bearer that is not a
 * token, and a tool call's arguments (kept only as a salted digest in the audit trail, and sealed
 * in the decision log) appear in no log line of any service at trace level, no MCP error, no audit
 * record, no stored message of any stream or bucket, and no span.
 */
const missing = natsServerMissing('the canary scan of what the gateway writes');
const CANARY_API_KEY = 'canary-gateway-key-5d20c7a1';
const CANARY_ARGUMENT = 'canary-argument-0f93be4c';
const CANARY_BAD_BEARER = 'canary-bad-bearer-61d2e0';
const SERVICES: readonly ServiceName[] = ['directory', 'authorizer', 'vault', 'audit', 'policy', 'gateway'];

describe.skipIf(missing)('canary secrets, tokens and arguments appear nowhere the gateway path writes', () => {
  const spans = new InMemorySpanExporter();
  const tracing = new NodeTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor(spans)] });
  const logLines: string[] = [];
  const errors: string[] = [];
  const canaries = new Set<string>([CANARY_API_KEY, CANARY_ARGUMENT, CANARY_BAD_BEARER, 'test-app-secret']);
  const clients: Client[] = [];
  let h: TestSystem;
  let idp: TestIdp;
  let tools: SampleToolServer;
  let resource: string;

  const plantToken = (token: string) => {
    canaries.add(token);
    const signature = token.split('.')[2];
    if (signature && signature.length >= 16) canaries.add(signature);
    return token;
  };
  const connect = async (token: string) => {
    const client = new Client({ name: 'canary-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  };
  /** A call's answer as the model would read it; a protocol error is kept as written. */
  const call = async (client: Client, name: string, args: Record<string, unknown>) => {
    try {
      const result = await client.callTool({ name, arguments: args });
      if (result.isError) errors.push(JSON.stringify(result.content));
      return result;
    } catch (error) {
      errors.push(JSON.stringify({ message: (error as Error).message, data: (error as { data?: unknown }).data }));
      return undefined;
    }
  };

  beforeAll(async () => {
    tracing.register();
    const port = await freePort();
    const gatewayUrl = `http://127.0.0.1:${port}`;
    resource = `${gatewayUrl}/mcp/acme/sales`;
    h = await startSystem({ services: [], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: gatewayUrl } });
    for (const name of SERVICES) {
      const sink = new PassThrough();
      sink.on('data', (chunk: Buffer) => logLines.push(...chunk.toString().split('\n').filter(Boolean)));
      await h.add(name, { logger: createLogger(name, { level: 'trace', destination: sink }) });
    }
    [idp, tools] = await Promise.all([startTestIdp(), startSampleToolServer()]);
    const key = await h.workload('sales-gateway');
    await h.setAuthorizer('acme', 'sales-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource], allowedScopes: ['crm.read'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'sales-tools', apiKey: CANARY_API_KEY, allowedWorkloads: ['sales-gateway'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'tools-m2m', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['sales-gateway'] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'sales', workload: { name: 'sales-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer], scopesSupported: ['crm.read'] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'keyed', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'api-key', provider: 'sales-tools' }, defaultScopes: ['crm.read'] } });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'federated', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'oauth2-user', provider: 'tools-m2m', scopes: ['openid', 'crm.read'] }, defaultScopes: ['crm.read'] } });
    // Sarah's consent, as the vault keeps it once given: a real token set of hers, already expired, so the first call refreshes it.
    const sarahAtTools = await idp.userTokens({ sub: 'sarah', audience: 'https://tools.example', scope: 'openid crm.read' });
    plantToken(sarahAtTools.accessToken);
    canaries.add(sarahAtTools.refreshToken);
    const seed = await VaultSeed.open(h);
    const sarah = { iss: idp.issuer, sub: 'sarah' };
    await seed.userTokens('acme', 'tools-m2m', sarah, ['openid', 'crm.read'], { accessToken: sarahAtTools.accessToken, refreshToken: sarahAtTools.refreshToken, expiresIn: 0 });
    await seed.grant('acme', { workload: 'sales-gateway', provider: 'tools-m2m', user: sarah, scopes: ['openid', 'crm.read'] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'machine', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'oauth2-m2m', provider: 'tools-m2m', scopes: ['openid'] }, defaultScopes: ['crm.read'] } });
    // A policy set, so the decision log is written (arguments sealed) and a denial names the set.
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'sales', text: '@id("all") permit (principal, action, resource);\n@id("no-secrets") forbid (principal, action == Mandate::Action::"keyed___documents_list", resource);' });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'sales', policy: 'sales', mode: 'enforce' });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), tools?.stop()]);
    await tracing.shutdown();
  });

  it('runs the gateway paths, good and bad, then finds no canary in anything written', async () => {
    const sarah = await connect(plantToken(await idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'crm.read' })));
    // The good paths: each credential reaches its target (what the target saw is a canary too).
    const keyed = await call(sarah, 'keyed___whoami', {});
    expect(keyed?.structuredContent).toEqual({ authorization: `Bearer ${CANARY_API_KEY}` });
    const machine = await call(sarah, 'machine___whoami', {});
    const m2mToken = (machine?.structuredContent as { authorization?: string } | undefined)?.authorization?.replace(/^Bearer /, '');
    expect(m2mToken).toBeTruthy();
    plantToken(m2mToken!);
    const federated = await call(sarah, 'federated___whoami', {});
    const sarahsToken = (federated?.structuredContent as { authorization?: string } | undefined)?.authorization?.replace(/^Bearer /, '');
    expect(sarahsToken, 'the refreshed user token reached the target').toBeTruthy();
    expect(idp.tokenRequests.filter((r) => r.grantType === 'refresh_token' && r.status === 200)).toHaveLength(1);
    plantToken(sarahsToken!);
    expect(JSON.stringify((await call(sarah, 'keyed___finance_spend', { accountId: CANARY_ARGUMENT }))?.content)).toContain(CANARY_ARGUMENT);

    // The bad paths: a denial by policy, arguments the schema refuses, an unknown tool, a bearer that is no token, a token for another audience.
    expect(await call(sarah, 'keyed___documents_list', { accountId: CANARY_ARGUMENT })).toBeUndefined();
    expect((await call(sarah, 'keyed___crm_notes', { accountId: CANARY_ARGUMENT }))?.isError).toBe(true);
    expect(await call(sarah, 'nowhere___tool', { secret: CANARY_ARGUMENT })).toBeUndefined();
    for (const bearer of [CANARY_BAD_BEARER, plantToken(await idp.userAccessToken({ sub: 'sarah', audience: 'https://elsewhere.example', scope: 'crm.read' }))]) {
      const response = await fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
      expect(response.status).toBe(401);
      errors.push(`${response.headers.get('www-authenticate') ?? ''}\n${await response.text()}`);
    }

    // Everything is written: the calls are on the chained trail and the decision log.
    await expect.poll(() => h.audit.filter((r) => r.service === 'gateway' && r.action === 'tool-call').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(6);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await tracing.forceFlush();
    const stored = await everyStoredMessage(h.nc);
    const traced = everySpan(spans.getFinishedSpans());

    // The scan covered something real.
    expect(logLines.length).toBeGreaterThan(20);
    expect(errors.length).toBeGreaterThanOrEqual(5);
    expect(stored.some((m) => m.where.startsWith('MANDATE_DECISIONS'))).toBe(true);
    expect(stored.some((m) => m.where.startsWith('MANDATE_AUDIT_TRAIL ') && m.text.includes('"argumentsDigest"'))).toBe(true);
    expect(traced.some((span) => span.text.includes('MCP POST'))).toBe(true);

    expect(canariesFound(allWritten({ audit: h.audit, logLines, errors }, stored, traced), canaries)).toEqual([]);
  }, 90_000);
});
