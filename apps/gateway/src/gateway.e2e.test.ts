import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { stringify as stringifyYaml } from 'yaml';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import {
  gatewayCreateEndpoint,
  gatewayDeleteEndpoint,
  gatewayGetEndpoint,
  gatewayListEndpoint,
  providerCreateEndpoint,
  type InterceptedCall,
  targetAddEndpoint,
  targetListEndpoint,
  targetRemoveEndpoint,
  targetSyncEndpoint,
  toolsForEndpoint,
} from '@mandate/contracts';
import { forgeIdpToken } from '@mandate/authorizer/testing';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startChangingToolServer, startEverythingServer, startSampleToolServer, type EverythingServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { freePort } from '@mandate/testing';
import { HttpBrowser } from '@mandate/testing/http-browser';
import { RESOURCE_SCOPES, startResourceServers, type ResourceServers } from '@mandate/testing/resource-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('gateway service');

const CANARY_KEY = 'canary-gateway-api-key-93be1d';

describe.skipIf(missing)('the gateway, with the official MCP client, a real IdP and real upstream MCP servers', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let tools: SampleToolServer;
  let everything: EverythingServer;
  let gatewayKey: JWK;
  let gatewayUrl: string;
  let consentUrl: string;
  let resource: string;
  const clients: Client[] = [];
  const logLines: string[] = [];

  const connect = async (token: string | undefined, options: { elicitation?: boolean } = {}) => {
    const client = new Client({ name: 'gateway-test', version: '1.0.0' }, { capabilities: options.elicitation ? { elicitation: { url: {} } } : {} });
    const transport = new StreamableHTTPClientTransport(new URL(resource), token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : {});
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const sarahToken = () => idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'crm.read finance.read' });
  const bobToken = () => idp.userAccessToken({ sub: 'bob', audience: resource, scope: 'crm.read' });

  beforeAll(async () => {
    const [port, consentPort] = [await freePort(), await freePort()];
    gatewayUrl = `http://127.0.0.1:${port}`;
    consentUrl = `http://127.0.0.1:${consentPort}`;
    resource = `${gatewayUrl}/mcp/acme/sales`;
    h = await startSystem({
      services: ['directory', 'authorizer', 'vault', 'consent'],
      env: { CONSENT_BASE_URL: consentUrl, CONSENT_HTTP_PORT: String(consentPort), CONSENT_PUBLIC_URL: consentUrl },
    });
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => logLines.push(chunk.toString()));
    await h.add('gateway', { env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: gatewayUrl, GATEWAY_UNREACHABLE_RETRY_SECONDS: '1' }, logger: createLogger('gateway', { level: 'trace', destination: sink }) });
    const consentClient = { client_id: 'mandate-consent', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${consentUrl}/login/callback`] } as const;
    [idp, tools, everything] = await Promise.all([
      startTestIdp({ redirectUris: [`${consentUrl}/callback`], extraClients: [{ ...consentClient, grant_types: [...consentClient.grant_types], response_types: [...consentClient.response_types], redirect_uris: [...consentClient.redirect_uris] }] }),
      startSampleToolServer(),
      startEverythingServer(),
    ]);
    gatewayKey = await h.workload('sales-gateway');
    await h.setAuthorizer('acme', 'sales-gateway', {
      discoveryUrl: idp.discoveryUrl,
      allowedAudiences: [resource, `${gatewayUrl}/mcp/acme/guarded`, `${gatewayUrl}/mcp/acme/strict`, `${gatewayUrl}/mcp/acme/withheld`],
      allowedScopes: ['crm.read', 'finance.read'],
    });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'sales-tools', apiKey: CANARY_KEY, allowedWorkloads: ['sales-gateway'] });
    await h.bus.request(gatewayCreateEndpoint, {
      tenant: 'acme',
      name: 'sales',
      workload: { name: 'sales-gateway', privateJwk: gatewayKey as never },
      authorizationServers: [idp.issuer],
      scopesSupported: ['crm.read', 'finance.read'],
    });
    await h.bus.request(targetAddEndpoint, {
      tenant: 'acme',
      gateway: 'sales',
      target: {
        name: 'sales-tools',
        source: { kind: 'mcp', url: tools.url },
        credential: { kind: 'api-key', provider: 'sales-tools' },
        defaultScopes: ['crm.read'],
        bindings: [{ tool: 'finance_spend', requiredScopes: ['finance.read'], description: 'Spend this year, from finance' }],
        timeoutMs: 2_000,
      },
    });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'acme',
      name: 'crm',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['sales-gateway'],
    });
    await h.bus.request(targetAddEndpoint, {
      tenant: 'acme',
      gateway: 'sales',
      target: { name: 'crm', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'oauth2-user', provider: 'crm', scopes: ['openid', 'crm.read'], customParameters: { resource: 'https://crm.example' } }, defaultScopes: ['crm.read'] },
    });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'everything', source: { kind: 'mcp', url: everything.url }, bindings: [{ tool: 'get-env', hidden: true }] } });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), tools?.stop(), everything?.stop()]);
  });

  describe('administration', () => {
    it('shows a gateway with its resource URL and targets, and the tools found at each target', async () => {
      const gateway = await h.bus.request(gatewayGetEndpoint, { tenant: 'acme', name: 'sales' });
      expect(gateway).toMatchObject({ name: 'sales', workload: 'sales-gateway', resourceUrl: resource, targets: ['crm', 'everything', 'sales-tools'] });
      // (crm-api, the OpenAPI target, is added further down.)
      expect(JSON.stringify(gateway)).not.toContain('"d"');
      expect((await h.bus.request(gatewayListEndpoint, { tenant: 'acme' })).items.map((g) => g.name)).toEqual(['sales']);
      const targets = (await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'sales' })).items;
      expect(targets.find((t) => t.name === 'sales-tools')?.tools.map((t) => t.name)).toEqual(['crm_notes', 'finance_spend', 'documents_list', 'whoami']);
      expect(targets.find((t) => t.name === 'everything')?.tools.map((t) => t.name)).toContain('echo');
    });

    it('refuses bad input with a typed error and changes nothing', async () => {
      const before = await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'sales' });
      const add = (target: object) => failure(h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target } as never));
      expect((await add({ name: 'x', source: { kind: 'ftp', url: tools.url } })).code).toBe('invalid_request');
      expect((await add({ name: 'Bad_Name', source: { kind: 'mcp', url: tools.url } })).code).toBe('invalid_request');
      expect((await add({ name: 'ghost', source: { kind: 'mcp', url: tools.url }, bindings: [{ tool: 'no_such_tool' }] })).code).toBe('invalid_request');
      expect((await add({ name: 'twice', source: { kind: 'mcp', url: tools.url }, bindings: [{ tool: 'whoami' }, { tool: 'whoami' }] })).code).toBe('invalid_request');
      expect((await add({ name: 'sales-tools', source: { kind: 'mcp', url: tools.url } })).code).toBe('conflict');
      const unreachable = await add({ name: 'down', source: { kind: 'mcp', url: `http://127.0.0.1:${await freePort()}/mcp` }, timeoutMs: 1_000 });
      expect(unreachable.code).toBe('unavailable');
      expect((await failure(h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'nope', target: { name: 'x', source: { kind: 'mcp', url: tools.url } } }))).code).toBe('not_found');
      expect(await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'sales' })).toEqual(before);
      const wrongKey = await failure(h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'other', workload: { name: 'sales-gateway', privateJwk: { ...gatewayKey, kid: 'unknown' } as never }, authorizationServers: [idp.issuer] }));
      expect(wrongKey.code).toBe('invalid_request');
      expect((await failure(h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'sales', workload: { name: 'sales-gateway', privateJwk: gatewayKey as never }, authorizationServers: [idp.issuer] }))).code).toBe('conflict');
      expect((await h.bus.request(gatewayListEndpoint, { tenant: 'acme' })).items.map((g) => g.name)).toEqual(['sales']);
    });

    it("explains what a principal sees and why the rest is hidden", async () => {
      const seen = await h.bus.request(toolsForEndpoint, { tenant: 'acme', gateway: 'sales', token: await bobToken() });
      expect(seen.principal).toMatchObject({ sub: 'bob', iss: idp.issuer });
      expect(seen.visible.map((t) => t.name)).toContain('sales-tools___crm_notes');
      expect(seen.hidden).toEqual(
        expect.arrayContaining([
          { name: 'sales-tools___finance_spend', target: 'sales-tools', tool: 'finance_spend', reason: 'missing_scopes', missingScopes: ['finance.read'] },
          { name: 'everything___get-env', target: 'everything', tool: 'get-env', reason: 'hidden_by_binding' },
        ]),
      );
    });
  });

  describe('inbound: the MCP authorization spec', () => {
    it('publishes its protected-resource metadata (RFC 9728)', async () => {
      const response = await fetch(`${gatewayUrl}/.well-known/oauth-protected-resource/mcp/acme/sales`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        resource,
        authorization_servers: [idp.issuer],
        scopes_supported: ['crm.read', 'finance.read'],
        bearer_methods_supported: ['header'],
        resource_name: 'Mandate gateway sales',
        jwks_uri: `${gatewayUrl}/.well-known/jwks.json`,
      });
    });

    it('answers a request without a token with 401 and where its metadata is', async () => {
      const response = await fetch(resource, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${gatewayUrl}/.well-known/oauth-protected-resource/mcp/acme/sales"`);
    });

    it('refuses a token for another audience, an expired one and a WAT, as invalid_token', async () => {
      const post = (token: string) => fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
      const other = await idp.userAccessToken({ sub: 'sarah', audience: 'https://crm.example', scope: 'crm.read' });
      const wat = await h.machineWat('sales-gateway', gatewayKey);
      const expired = await forgeIdpToken(idp, { sub: 'sarah', aud: resource, scope: 'crm.read', iat: 1_000, exp: 2_000 });
      for (const token of [other, wat, expired, 'not-a-jwt']) {
        const response = await post(token);
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer resource_metadata="[^"]+", error="invalid_token", error_description="[^"]+"$/);
      }
    });

    it('refuses a token for another gateway of the same workload (its config allows both audiences), and the authorizer records the refusal', async () => {
      const forGuarded = await idp.userAccessToken({ sub: 'sarah', audience: `${gatewayUrl}/mcp/acme/guarded`, scope: 'crm.read' });
      const response = await fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${forGuarded}`, 'content-type': 'application/json' }, body: '{}' });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      await expect
        .poll(() => h.audit.find((r) => r.service === 'authorizer' && r.action === 'authorize' && r.target?.resource === resource && r.outcome === 'denied'))
        .toMatchObject({ reason: 'audience_not_allowed', actor: { workload: 'sales-gateway' } });
      expect(h.audit.some((r) => r.service === 'authorizer' && r.action === 'authorize' && r.target?.resource === resource && r.outcome === 'allowed' && r.actor.user?.sub === 'sarah' && JSON.stringify(r).includes('guarded'))).toBe(false);
    });

    it('answers a token with none of the scopes with 403 insufficient_scope naming every scope', async () => {
      const token = await idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'docs.read' });
      const response = await fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(response.headers.get('www-authenticate')).toContain('scope="crm.read finance.read"');
    });

    it("refuses a browser origin that is not the gateway's (DNS rebinding)", async () => {
      const response = await fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${await sarahToken()}`, origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{}' });
      expect(response.status).toBe(403);
    });

    it("answers another user's token on a session with 404, as for a session that does not exist; the session's own user goes on using it", async () => {
      const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${await sarahToken()}` } } });
      const client = new Client({ name: 'gateway-test', version: '1.0.0' });
      await client.connect(transport);
      clients.push(client);
      const sessionId = transport.sessionId!;
      expect(sessionId).toMatch(/.+/);
      const list = (token: string, session: string) =>
        fetch(resource, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'mcp-session-id': session, 'mcp-protocol-version': transport.protocolVersion ?? '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
        });
      const asBob = await list(await bobToken(), sessionId);
      expect(asBob.status).toBe(404);
      const unknown = await list(await bobToken(), 'no-such-session');
      expect([unknown.status, await unknown.text()]).toEqual([404, await asBob.text()]);
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('sales-tools___finance_spend');
    });

    it('answers 404 for a gateway that does not exist', async () => {
      expect((await fetch(`${gatewayUrl}/mcp/acme/nope`, { method: 'POST' })).status).toBe(404);
    });
  });

  describe('discovery and calls', () => {
    it('lists only the tools whose scopes the principal holds', async () => {
      const sarah = (await (await connect(await sarahToken())).listTools()).tools.map((t) => t.name);
      const bob = (await (await connect(await bobToken())).listTools()).tools.map((t) => t.name);
      expect(sarah).toEqual(expect.arrayContaining(['sales-tools___crm_notes', 'sales-tools___finance_spend', 'everything___echo']));
      expect(bob).toContain('sales-tools___crm_notes');
      expect(bob).not.toContain('sales-tools___finance_spend');
      for (const names of [sarah, bob]) expect(names).not.toContain('everything___get-env');
      const described = (await (await connect(await sarahToken())).listTools()).tools.find((t) => t.name === 'sales-tools___finance_spend');
      expect(described?.description).toBe('Spend this year, from finance');
    });

    it('calls a tool at the target with the vault credential, never the caller token', async () => {
      const token = await sarahToken();
      const client = await connect(token);
      const notes = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
      expect(notes.structuredContent).toEqual({ accountId: 'acc-1', notes: ['Renewal in March', 'Wants the analytics add-on'] });
      const whoami = await client.callTool({ name: 'sales-tools___whoami', arguments: {} });
      expect(whoami.structuredContent).toEqual({ authorization: `Bearer ${CANARY_KEY}` });
      expect(tools.requests.some((r) => r.authorization?.includes(token))).toBe(false);
      const echo = await client.callTool({ name: 'everything___echo', arguments: { message: 'hello through the gateway' } });
      expect(JSON.stringify(echo.content)).toContain('hello through the gateway');
    });

    it("keeps one trace from the client's traceparent through the gateway's audit record to the target", async () => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const client = new Client({ name: 'gateway-test', version: '1.0.0' });
      const headers = { authorization: `Bearer ${await sarahToken()}`, traceparent: `00-${traceId}-00f067aa0ba902b7-01` };
      await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers } }));
      clients.push(client);
      await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
      expect(tools.requests.at(-1)?.traceparent?.split('-')[1]).toBe(traceId);
      await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.traceId === traceId)).toBe(true);
    });

    it('answers a hidden tool exactly as an unknown one (no oracle)', async () => {
      const bob = await connect(await bobToken());
      const answer = async (name: string) => {
        const error = await bob.callTool({ name, arguments: { accountId: 'acc-1' } }).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(McpError);
        return { code: (error as McpError).code, message: (error as McpError).message.replace(name, '<name>') };
      };
      const hidden = await answer('sales-tools___finance_spend');
      expect(hidden).toEqual({ code: ErrorCode.InvalidParams, message: 'MCP error -32602: Unknown tool: <name>' });
      expect(await answer('sales-tools___no_such_tool')).toEqual(hidden);
      expect(await answer('everything___get-env')).toEqual(hidden);
    });

    it('checks the arguments against the input schema before anything leaves', async () => {
      const client = await connect(await sarahToken());
      const calls = tools.requests.filter((r) => r.method === 'tools/call').length;
      const bad = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 42 } });
      expect(bad.isError).toBe(true);
      expect(JSON.stringify(bad.content)).toContain('Invalid arguments');
      expect(tools.requests.filter((r) => r.method === 'tools/call').length).toBe(calls);
    });

    it('refuses an oversized request body', async () => {
      const client = await connect(await sarahToken());
      const error = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'x'.repeat(2 * 1024 * 1024) } }).then(() => undefined, (e: unknown) => e);
      expect(String(error)).toMatch(/413|too large/i);
    });

    it('answers upstream failures with a clear tool error: slow, malformed, oversized, an HTTP error (which hides nothing)', async () => {
      const client = await connect(await sarahToken());
      try {
        tools.setBehaviour({ mode: 'slow', delayMs: 3_000 });
        const slow = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(slow.isError).toBe(true);
        expect(JSON.stringify(slow.content)).toContain('did not answer within 2000 ms');
        tools.setBehaviour({ mode: 'malformed' });
        const malformed = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(malformed.isError).toBe(true);
        expect(JSON.stringify(malformed.content)).toContain('did not answer with valid MCP');
        await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.outcome === 'failed' && r.reason === 'upstream_malformed')).toBe(true);
        tools.setBehaviour({ mode: 'oversized', bytes: 5 * 1024 * 1024 });
        const oversized = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(oversized.isError).toBe(true);
        expect(JSON.stringify(oversized.content)).toMatch(/more than \d+ bytes/);
        // Chunked, with no length to refuse it by: cut off at the limit as it is read, not read whole.
        tools.setBehaviour({ mode: 'oversized', bytes: 256 * 1024 * 1024, streamed: true });
        const streamed = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(streamed.isError).toBe(true);
        expect(JSON.stringify(streamed.content)).toMatch(/more than \d+ bytes/);
        expect(tools.streamedBytes).toBeLessThan(64 * 1024 * 1024);
        // As one server-sent event: cut off at the limit too (without the cut-off the SDK read all 256 MiB of it, then refused it as too large);
        // the SDK tells no request of a broken stream, so the call ends at its timeout.
        tools.setBehaviour({ mode: 'oversized', bytes: 256 * 1024 * 1024, streamed: 'sse' });
        const sse = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(sse.isError).toBe(true);
        expect(tools.streamedBytes).toBeLessThan(64 * 1024 * 1024);
        // An HTTP error is that call's tool error: the target answered, so its tools stay listed.
        tools.setBehaviour({ mode: 'http-error', status: 500 });
        const failing = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(failing.isError).toBe(true);
        expect(JSON.stringify(failing.content)).toContain('HTTP 500');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('sales-tools___crm_notes');
      } finally {
        tools.setBehaviour({ mode: 'normal' });
      }
      const traced = tools.requests.filter((r) => r.method === 'tools/call').at(-1);
      expect(traced?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      const again = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-2' } });
      expect(again.isError).toBeFalsy();
    }, 30_000);

    it('audits every call with a salted digest of the arguments, never the arguments or a credential', async () => {
      const client = await connect(await sarahToken());
      await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-2' } });
      await expect.poll(() => h.audit.filter((r) => r.service === 'gateway' && r.action === 'tool-call' && r.outcome === 'succeeded').length).toBeGreaterThan(0);
      const records = h.audit.filter((r) => r.service === 'gateway');
      const call = records.find((r) => r.action === 'tool-call' && r.outcome === 'succeeded')!;
      expect(call).toMatchObject({ actor: { workload: 'sales-gateway', user: { sub: 'sarah' } }, details: { gateway: 'sales', target: 'sales-tools', tool: 'crm_notes', decision: 'allow' } });
      expect(call.details?.['argumentsDigest']).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(records.some((r) => r.action === 'tool-call' && r.outcome === 'denied' && r.reason === 'unknown_tool')).toBe(true);
      const everythingWritten = JSON.stringify(records) + logLines.join('');
      expect(everythingWritten).not.toContain(CANARY_KEY);
      expect(everythingWritten).not.toContain('acc-2"');
    });
  });

  describe('an OpenAPI target', () => {
    let resources: ResourceServers;
    const crmApi = () => ({
      openapi: '3.0.3',
      info: { title: 'CRM', version: '1' },
      servers: [{ url: resources.crm.url }],
      paths: {
        '/accounts/{account}/notes': {
          parameters: [{ name: 'account', in: 'path', required: true, schema: { type: 'string' } }],
          get: { operationId: 'listNotes', summary: "An account's notes", responses: { '200': { description: 'the notes', content: { 'application/json': { schema: { $ref: '#/components/schemas/Notes' } } } } } },
        },
      },
      components: { schemas: { Notes: { type: 'object', properties: { notes: { type: 'array' } } } } },
    });

    beforeAll(async () => {
      resources = await startResourceServers({ issuer: idp.issuer, jwksUri: idp.jwksUri });
      await h.bus.request(providerCreateEndpoint, {
        kind: 'oauth2',
        tenant: 'acme',
        name: 'crm-api',
        vendor: 'custom',
        discoveryUrl: idp.discoveryUrl,
        clientId: 'm2m-client',
        clientSecret: 'm2m-client-secret',
        tokenParameters: { resource: resources.crm.audience },
        allowedWorkloads: ['sales-gateway'],
      });
    });
    afterAll(() => resources?.stop());

    it('makes each operation a tool, and calls it with an M2M token from the vault', async () => {
      const target = await h.bus.request(targetAddEndpoint, {
        tenant: 'acme',
        gateway: 'sales',
        target: { name: 'crm-api', source: { kind: 'openapi', document: crmApi() }, credential: { kind: 'oauth2-m2m', provider: 'crm-api', scopes: [RESOURCE_SCOPES.crmNotesRead] }, defaultScopes: ['crm.read'] },
      });
      expect(target.tools).toEqual([
        expect.objectContaining({ name: 'listNotes', description: "An account's notes", inputSchema: expect.objectContaining({ required: ['account'], additionalProperties: false }) }),
      ]);
      const client = await connect(await sarahToken());
      const notes = await client.callTool({ name: 'crm-api___listNotes', arguments: { account: 'acme' } });
      expect(notes.isError).toBeFalsy();
      expect(JSON.stringify(notes.structuredContent)).toContain('notes');
      expect(resources.requests.at(-1)).toMatchObject({ server: 'crm', method: 'GET', path: '/accounts/acme/notes', sub: 'm2m-client' });
      // A slash stays inside its segment: the request keeps to the operation's path.
      await client.callTool({ name: 'crm-api___listNotes', arguments: { account: '../admin' } });
      expect(resources.requests.at(-1)?.path).toBe('/accounts/..%2Fadmin/notes');
      const traversal = await client.callTool({ name: 'crm-api___listNotes', arguments: { account: '..' } });
      expect(traversal.isError).toBe(true);
      expect(JSON.stringify(traversal.content)).toContain('may not be');
      expect(resources.requests.at(-1)?.path).toBe('/accounts/..%2Fadmin/notes');
    });

    it('fetches a document from its URL, JSON or YAML; a redirect, a server that is down or an internal address is unavailable and adds nothing', async () => {
      const documents = createServer((request, response) => {
        if (request.url === '/openapi.json') return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(crmApi()));
        if (request.url === '/openapi.yaml') return void response.writeHead(200, { 'content-type': 'application/yaml' }).end(stringifyYaml(crmApi()));
        if (request.url === '/moved') return void response.writeHead(302, { location: '/openapi.json' }).end();
        response.writeHead(404).end();
      });
      await new Promise<void>((resolve) => documents.listen(0, '127.0.0.1', resolve));
      const at = (path: string) => `http://127.0.0.1:${(documents.address() as AddressInfo).port}${path}`;
      const add = (name: string, documentUrl: string) => h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name, source: { kind: 'openapi', documentUrl }, timeoutMs: 2_000 } });
      try {
        for (const [name, path] of [['crm-json', '/openapi.json'], ['crm-yaml', '/openapi.yaml']] as const) {
          const target = await add(name, at(path));
          expect(target.tools.map((tool) => tool.name)).toEqual(['listNotes']);
          expect(target.source).toEqual({ kind: 'openapi', documentUrl: at(path) });
        }
        const moved = await failure(add('crm-moved', at('/moved')));
        expect([moved.code, moved.message]).toEqual(['unavailable', 'target crm-moved: the OpenAPI document could not be fetched']);
        const down = await failure(add('crm-down', `http://127.0.0.1:${await freePort()}/openapi.json`));
        expect(down.code).toBe('unavailable');
        // Anywhere but this machine, the parser's guard against internal addresses stays on.
        const internal = await failure(add('crm-internal', 'https://10.255.255.1/openapi.json'));
        expect([internal.code, internal.message]).toEqual(['unavailable', 'target crm-internal: the OpenAPI document could not be fetched: its URL is an internal address, which the gateway does not fetch']);
        const names = (await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'sales' })).items.map((t) => t.name);
        expect(names.filter((name) => ['crm-moved', 'crm-down', 'crm-internal'].includes(name))).toEqual([]);
      } finally {
        for (const name of ['crm-json', 'crm-yaml']) await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'sales', target: name }).catch(() => undefined);
        documents.closeAllConnections();
        await new Promise<void>((resolve) => documents.close(() => resolve()));
      }
    });

    it('refuses a document that does not parse, or is not OpenAPI 3, and changes nothing', async () => {
      const add = (name: string, document: Record<string, unknown>) => failure(h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name, source: { kind: 'openapi', document } } }));
      expect((await add('broken', { openapi: '3.0.3', info: { title: 'x' }, paths: { '/a': { get: { responses: 'nope' } } } })).code).toBe('invalid_request');
      expect((await add('swagger', { swagger: '2.0', info: { title: 'x', version: '1' }, paths: {} })).code).toBe('invalid_request');
      expect((await add('serverless', { ...crmApi(), servers: [] })).code).toBe('invalid_request');
      const unpinned = await failure(
        h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'unpinned', source: { kind: 'openapi', documentUrl: 'https://api.example/openapi.json' }, credential: { kind: 'oauth2-m2m', provider: 'crm-api' } } }),
      );
      expect(unpinned.code).toBe('invalid_request');
      expect(JSON.stringify(unpinned.issues)).toContain('needs baseUrl');
      // A $ref outside the document (a file, another URL) is never read: it could put a secret into a tool's schema.
      const fileRef = { ...crmApi(), paths: { '/x': { get: { operationId: 'x', parameters: [{ name: 'p', in: 'query', schema: { $ref: 'file:///etc/passwd' } }], responses: { '200': { description: 'ok' } } } } } };
      const refused = await add('file-ref', fileRef);
      expect(refused.code).toBe('invalid_request');
      expect(refused.message).not.toContain('root:');
      expect((await add('relative-ref', { ...fileRef, paths: { '/x': { get: { ...fileRef.paths['/x'].get, parameters: [{ name: 'p', in: 'query', schema: { $ref: '../../etc/passwd' } }] } } } })).code).toBe('invalid_request');
      // Two arguments of one name: a path and a query parameter, or a parameter called body beside a body.
      const twice = await add('twice', { ...crmApi(), paths: { '/x/{id}': { get: { operationId: 'x', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }, { name: 'id', in: 'query', schema: { type: 'string' } }], responses: { '200': { description: 'ok' } } } } } });
      expect(twice.code).toBe('invalid_request');
      expect(twice.message).toContain('two arguments named id (path and query)');
      const bodyTwice = { ...crmApi(), paths: { '/y': { post: { operationId: 'y', parameters: [{ name: 'body', in: 'query', schema: { type: 'string' } }], requestBody: { content: { 'application/json': { schema: { type: 'object' } } } }, responses: { '200': { description: 'ok' } } } } } };
      expect((await add('body-twice', bodyTwice)).message).toContain('two arguments named body (requestBody and query)');
      const names = (await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'sales' })).items.map((t) => t.name);
      expect(names).not.toEqual(expect.arrayContaining(['broken']));
      expect(names.filter((name) => ['broken', 'swagger', 'serverless', 'file-ref', 'relative-ref', 'twice', 'body-twice'].includes(name))).toEqual([]);
    });
  });

  describe('interceptors', () => {
    const seen: InterceptedCall[] = [];
    const answer = (subject: string, decide: (call: InterceptedCall) => unknown) =>
      h.nc.subscribe(subject, {
        callback: (_error, msg) => {
          const call = msg.json<InterceptedCall>();
          seen.push(call);
          const reply = decide(call);
          if (reply !== undefined) msg.respond(JSON.stringify(reply));
        },
      });
    const create = async (name: string, interceptors: object[]) => {
      await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name, workload: { name: 'sales-gateway', privateJwk: gatewayKey as never }, authorizationServers: [idp.issuer], interceptors: interceptors as never });
      await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: name, target: { name: 'sales-tools', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'api-key', provider: 'sales-tools' } } });
    };
    const connectTo = async (gateway: string, token: string) => {
      const client = new Client({ name: 'gateway-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${gatewayUrl}/mcp/acme/${gateway}`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      clients.push(client);
      return client;
    };

    beforeAll(async () => {
      answer('mandate.interceptor.acme.guard', (call) => {
        if (call.arguments['accountId'] === 'acc-2') return { action: 'deny', reason: 'acc-2 is under legal hold' };
        if (call.arguments['accountId'] === 'acc-alias') return { action: 'rewrite', arguments: { accountId: 'acc-1' } };
        if (call.arguments['accountId'] === 'acc-broken') return { action: 'rewrite', arguments: { accountId: 7 } };
        return { action: 'allow' };
      });
      answer('mandate.interceptor.acme.redact', (call) => (JSON.stringify(call.result).includes('Renewal') ? { action: 'redact', result: { content: [{ type: 'text', text: '[redacted]' }] } } : { action: 'pass' }));
      answer('mandate.interceptor.acme.silent', () => undefined);
      await create('guarded', [
        { phase: 'request', subject: 'mandate.interceptor.acme.guard' },
        { phase: 'request', subject: 'mandate.interceptor.acme.silent', timeoutMs: 100, failOpen: true },
        { phase: 'response', subject: 'mandate.interceptor.acme.redact' },
      ]);
      await create('strict', [{ phase: 'request', subject: 'mandate.interceptor.acme.silent', timeoutMs: 100 }]);
      await create('withheld', [{ phase: 'response', subject: 'mandate.interceptor.acme.silent', timeoutMs: 100 }]);
    });

    it('lets a call go, denies one with the reason the client sees, rewrites one, and redacts a result', async () => {
      const token = await idp.userAccessToken({ sub: 'sarah', audience: `${gatewayUrl}/mcp/acme/guarded`, scope: 'crm.read' });
      const client = await connectTo('guarded', token);
      const allowed = await client.callTool({ name: 'sales-tools___finance_spend', arguments: { accountId: 'acc-1' } });
      expect(allowed.structuredContent).toEqual({ accountId: 'acc-1', currency: 'EUR', total: 182_400 });
      const denied = await client.callTool({ name: 'sales-tools___finance_spend', arguments: { accountId: 'acc-2' } });
      expect(denied.isError).toBe(true);
      expect(JSON.stringify(denied.content)).toContain('acc-2 is under legal hold');
      const rewritten = await client.callTool({ name: 'sales-tools___finance_spend', arguments: { accountId: 'acc-alias' } });
      expect(rewritten.structuredContent).toMatchObject({ accountId: 'acc-1' });
      const broken = await client.callTool({ name: 'sales-tools___finance_spend', arguments: { accountId: 'acc-broken' } });
      expect(broken.isError).toBe(true);
      const redacted = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
      expect(redacted.content).toEqual([{ type: 'text', text: '[redacted]' }]);
      expect(redacted.structuredContent).toBeUndefined();
      const guard = seen.find((call) => call.gateway === 'guarded' && call.phase === 'request')!;
      expect(guard.principal).toMatchObject({ iss: idp.issuer, sub: 'sarah', scopes: ['crm.read'], claims: { sub: 'sarah' } });
      expect(JSON.stringify(seen)).not.toContain(token);
      expect(JSON.stringify(seen)).not.toContain(CANARY_KEY);
    });

    it('refuses the call when an interceptor that fails closed does not answer in time', async () => {
      const token = await idp.userAccessToken({ sub: 'sarah', audience: `${gatewayUrl}/mcp/acme/strict`, scope: 'crm.read' });
      const calls = tools.requests.filter((r) => r.method === 'tools/call').length;
      const refused = await (await connectTo('strict', token)).callTool({ name: 'sales-tools___finance_spend', arguments: { accountId: 'acc-1' } });
      expect(refused.isError).toBe(true);
      expect(JSON.stringify(refused.content)).toContain('did not answer');
      expect(tools.requests.filter((r) => r.method === 'tools/call').length).toBe(calls);
      await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.reason === 'interceptor_denied' && r.details?.['gateway'] === 'strict')).toBe(true);
    });
    it('withholds the result when a response interceptor that fails closed does not answer in time (the call itself was made)', async () => {
      const token = await idp.userAccessToken({ sub: 'sarah', audience: `${gatewayUrl}/mcp/acme/withheld`, scope: 'crm.read' });
      const calls = tools.requests.filter((r) => r.method === 'tools/call').length;
      const withheld = await (await connectTo('withheld', token)).callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
      expect(withheld.isError).toBe(true);
      expect(withheld.content).toEqual([{ type: 'text', text: 'The result was withheld: a required check of this gateway did not answer' }]);
      expect(withheld.structuredContent).toBeUndefined();
      expect(JSON.stringify(withheld)).not.toContain('Renewal');
      expect(tools.requests.filter((r) => r.method === 'tools/call').length).toBe(calls + 1);
      await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.outcome === 'failed' && r.reason === 'interceptor_failed' && r.details?.['gateway'] === 'withheld')).toBe(true);
    });
  });

  describe('user federation: consent through URL elicitation', () => {
    /** Signs `login` in at the consent pages (through the IdP) and opens the consent URL; returns the page. */
    const openConsent = async (browser: HttpBrowser, url: string, login: string) => {
      const toSignIn = await browser.request(url);
      expect(toSignIn.status).toBe(303);
      const back = await browser.throughIdp(toSignIn.headers.get('location')!, idp.issuer, login, `${consentUrl}/login/callback`);
      const signedIn = await browser.request(back);
      return browser.request(new URL(signedIn.headers.get('location')!, consentUrl).href);
    };

    it('asks for consent with -32042, refuses the URL to another person, and the same call succeeds after consent', async () => {
      const token = await sarahToken();
      const client = await connect(token, { elicitation: true });
      const asked = await client.callTool({ name: 'crm___whoami', arguments: {} }).then(() => undefined, (e: unknown) => e);
      expect(asked).toBeInstanceOf(UrlElicitationRequiredError);
      const [elicitation] = (asked as UrlElicitationRequiredError).elicitations;
      expect(elicitation).toMatchObject({ mode: 'url', url: expect.stringMatching(new RegExp(`^${consentUrl}/consent/`)) });
      expect(elicitation!.message).toContain('crm');

      const refused = await openConsent(new HttpBrowser(), elicitation!.url, 'bob');
      expect(refused.status).toBe(403);
      const stillAsked = await client.callTool({ name: 'crm___whoami', arguments: {} }).then(() => undefined, (e: unknown) => e);
      expect(stillAsked).toBeInstanceOf(UrlElicitationRequiredError);

      const sarah = new HttpBrowser();
      const page = await openConsent(sarah, elicitation!.url, 'sarah');
      expect(page.status).toBe(200);
      const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1];
      const approve = await sarah.request(elicitation!.url, { csrf: csrf!, decision: 'approve', duration: '7' });
      expect(approve.status).toBe(303);
      const callback = await sarah.throughIdp(approve.headers.get('location')!, idp.issuer, 'sarah', `${consentUrl}/callback`);
      const granted = await sarah.request(callback);
      expect(granted.status).toBe(200);
      expect(await granted.text()).toContain('<title>Access granted');

      const answered = await client.callTool({ name: 'crm___whoami', arguments: {} });
      const authorization = (answered.structuredContent as { authorization: string }).authorization;
      expect(authorization).toMatch(/^Bearer \S+$/);
      expect(authorization).not.toContain(token);
    }, 60_000);

    it('tells a client without URL elicitation which URL to open, as a tool error', async () => {
      const client = await connect(await bobToken());
      const answer = await client.callTool({ name: 'crm___whoami', arguments: {} });
      expect(answer.isError).toBe(true);
      expect(JSON.stringify(answer.content)).toMatch(new RegExp(`open ${consentUrl}/consent/`));
    });
  });

  describe('targets change', () => {
    it('answers a call to a target that is down with a tool error, leaves its tools out from then on (the call is enough), and lists them again once it answers', async () => {
      const doomed = await startSampleToolServer();
      await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'doomed', source: { kind: 'mcp', url: doomed.url }, timeoutMs: 1_000 } });
      const client = await connect(await sarahToken());
      const doomedTools = async () => (await client.listTools()).tools.map((t) => t.name).filter((name) => name.startsWith('doomed___'));
      expect(await doomedTools()).toContain('doomed___whoami');
      await doomed.stop();
      const down = await client.callTool({ name: 'doomed___whoami', arguments: {} });
      expect(down.isError).toBe(true);
      expect(JSON.stringify(down.content)).toContain('could not be reached');
      // No sync yet: the failed call marked it.
      await expect.poll(doomedTools, { timeout: 5_000 }).toEqual([]);
      await expect.poll(() => h.audit.some((r) => r.action === 'target-sync' && r.outcome === 'failed' && r.details?.['target'] === 'doomed')).toBe(true);
      expect((await failure(h.bus.request(targetSyncEndpoint, { tenant: 'acme', gateway: 'sales', target: 'doomed' }))).code).toBe('unavailable');
      expect(await doomedTools()).toEqual([]);
      const seen = await h.bus.request(toolsForEndpoint, { tenant: 'acme', gateway: 'sales', token: await sarahToken() });
      expect(seen.hidden.filter((t) => t.target === 'doomed').map((t) => t.reason)).toEqual(['target_unreachable', 'target_unreachable', 'target_unreachable', 'target_unreachable']);
      expect(logLines.join('')).toContain('tools/list leaves out a target that could not be reached');
      // Back: the gateway's retry (GATEWAY_UNREACHABLE_RETRY_SECONDS, 1 s here) finds it and lists its tools again.
      await doomed.restart();
      await expect.poll(doomedTools, { timeout: 10_000 }).toContain('doomed___whoami');
      expect(logLines.join('')).toContain('targets that could not be reached answer again');
      await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'sales', target: 'doomed' });
      await doomed.stop();
    });

    it('a target that could not be reached and comes back with a name another target shows stays out of every list: the refused sync is audited and the retry says why', async () => {
      const [owner, comer] = [await startChangingToolServer(['beta']), await startChangingToolServer(['alpha'])];
      try {
        await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'owner', source: { kind: 'mcp', url: owner.url }, toolNames: 'as-given' } });
        await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'comer', source: { kind: 'mcp', url: comer.url }, toolNames: 'as-given', timeoutMs: 1_000 } });
        const client = await connect(await sarahToken());
        const listed = async () => (await client.listTools()).tools.map((t) => t.name).filter((name) => name === 'alpha' || name === 'beta').sort();
        expect(await listed()).toEqual(['alpha', 'beta']);
        await comer.stop();
        expect((await client.callTool({ name: 'alpha', arguments: {} })).isError).toBe(true);
        await expect.poll(listed, { timeout: 5_000 }).toEqual(['beta']);
        // Back, with a tool of a name the owner shows: the retry (every second here) is refused each time.
        comer.addTool('beta');
        await comer.restart();
        // The retry covers the gateways in use: the client's listing keeps this one loaded.
        const logged = async () => {
          await listed();
          return logLines.join('');
        };
        await expect.poll(logged, { timeout: 10_000 }).toContain('a target that could not be reached answers again, but its tools were refused');
        const lines = logLines.join('').split('\n').filter((line) => line.startsWith('{'));
        const warning = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line['msg'] === 'a target that could not be reached answers again, but its tools were refused; it stays out of every list');
        expect(warning).toMatchObject({ target: 'acme/sales/comer', code: 'conflict' });
        expect(String(warning?.['reason'])).toContain('beta (target owner already has a tool of this name at the gateway)');
        // Retried every second, refused the same way each time: audited and logged once, not at every retry.
        for (let retries = 0; retries < 3; retries += 1) {
          await listed();
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
        expect(h.audit.filter((r) => r.action === 'target-sync' && r.outcome === 'failed' && r.reason === 'conflict' && r.details?.['target'] === 'comer')).toHaveLength(1);
        expect(logLines.join('').split('its tools were refused').length - 1).toBe(1);
        expect(await listed()).toEqual(['beta']);
        const seen = await h.bus.request(toolsForEndpoint, { tenant: 'acme', gateway: 'sales', token: await sarahToken() });
        expect(seen.hidden.filter((t) => t.target === 'comer').map((t) => t.reason)).toEqual(['target_unreachable']);
      } finally {
        for (const target of ['owner', 'comer']) await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'sales', target }).catch(() => undefined);
        await Promise.all([owner.stop(), comer.stop()]);
      }
    });

    it('discovers the tools of a target again when it announces tools/list_changed', async () => {
      const changing = await startChangingToolServer();
      try {
        await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'changing', source: { kind: 'mcp', url: changing.url } } });
        const client = await connect(await sarahToken());
        const names = async () => (await client.listTools()).tools.map((t) => t.name).filter((name) => name.startsWith('changing___'));
        expect(await names()).toEqual(['changing___first']);
        changing.addTool('second');
        await expect.poll(names, { timeout: 10_000 }).toEqual(['changing___first', 'changing___second']);
        await expect.poll(() => h.audit.some((r) => r.action === 'target-sync' && r.actor.admin === 'tools/list_changed')).toBe(true);
      } finally {
        await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'sales', target: 'changing' });
        await changing.stop();
      }
    });

    it('syncs, removes a target and deletes the gateway; its endpoint then answers 404', async () => {
      const synced = await h.bus.request(targetSyncEndpoint, { tenant: 'acme', gateway: 'sales', target: 'everything' });
      expect(synced.tools.length).toBeGreaterThan(5);
      expect(await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'sales', target: 'everything' })).toEqual({ removed: true });
      const names = (await (await connect(await sarahToken())).listTools()).tools.map((t) => t.name);
      expect(names.some((name) => name.startsWith('everything___'))).toBe(false);
      expect(await h.bus.request(gatewayDeleteEndpoint, { tenant: 'acme', name: 'sales' })).toEqual({ deleted: true });
      expect((await fetch(resource, { method: 'POST' })).status).toBe(404);
    });
  });
});
