import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, type JSONWebKeySet, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { JetStreamPublisher } from '@mandate/bus';
import {
  gatewayCreateEndpoint,
  MandateError,
  policyAttachEndpoint,
  policyCreateEndpoint,
  policyExplainEndpoint,
  RECEIPT_HEADER,
  RECEIPT_META_KEY,
  RECEIPT_TYPE,
  receiptKeysChangedEvent,
  SYSTEM_TENANT,
  targetAddEndpoint,
} from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import { verifyToolCallReceipt, type VerifyToolCallReceiptOptions } from '@mandate/sdk';
import { SigningKeyRing } from '@mandate/signing-keys';
import { JetStreamKvStore } from '@mandate/store';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { openReceiptSigningKeys, receiptKeyRecordId } from './store/receipt-key-repository.js';

const missing = natsServerMissing('receipts of tool calls through the gateway');

const UNDER_100 = `
@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };
`;

interface ReceivedCall {
  tool: string;
  arguments: Record<string, unknown>;
  meta: Record<string, unknown> | undefined;
}

/** An upstream MCP server (the official SDK's) that records what each `tools/call` brought, `_meta` included. */
async function startRecordingToolServer(): Promise<{ url: string; calls: ReceivedCall[]; stop(): Promise<void> }> {
  const calls: ReceivedCall[] = [];
  const http = createServer((request, response) => {
    void (async () => {
      const server = new McpServer({ name: 'recording-finance', version: '1.0.0' });
      server.registerTool('approve_expense', { description: 'Approves an expense', inputSchema: { amount: z.number().positive(), memo: z.string().optional() } }, async (args, extra) => {
        calls.push({ tool: 'approve_expense', arguments: args, meta: extra._meta as Record<string, unknown> | undefined });
        return { content: [{ type: 'text' as const, text: `approved ${args.amount}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      response.on('close', () => void server.close());
      await server.connect(transport);
      await transport.handleRequest(request, response);
    })().catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, calls, stop: () => close(http) };
}

/** An HTTP API answering every operation alike, recording the headers and body of each request. */
async function startRecordingApi(): Promise<{ baseUrl: string; requests: { url: string; headers: IncomingMessage['headers']; body: unknown }[]; stop(): Promise<void> }> {
  const requests: { url: string; headers: IncomingMessage['headers']; body: unknown }[] = [];
  const http = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => {
      requests.push({ url: request.url ?? '', headers: request.headers, body: chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"booked":true}');
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, requests, stop: () => close(http) };
}

const ledgerApi = {
  openapi: '3.0.3',
  info: { title: 'Ledger', version: '1' },
  paths: {
    '/entries': {
      post: {
        operationId: 'book_entry',
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', properties: { amount: { type: 'integer' } }, required: ['amount'] } } } },
        responses: { '200': { description: 'booked' } },
      },
    },
    '/entries/{entryId}': {
      get: {
        operationId: 'read_entry',
        parameters: [
          { name: 'entryId', in: 'path', required: true, schema: { type: 'integer' } },
          { name: 'includeVoided', in: 'query', schema: { type: 'boolean' } },
          { name: 'fields', in: 'query', schema: { type: 'string' } },
        ],
        responses: { '200': { description: 'the entry' } },
      },
    },
  },
};

function close(http: Server): Promise<void> {
  http.closeAllConnections();
  return new Promise<void>((resolve) => http.close(() => resolve()));
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; reason: unknown }> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return { code: error.code, reason: error.details?.['reason'] };
}

describe.skipIf(missing)('signed receipts on permitted tool calls, through the gateway with the official MCP client', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let finance: Awaited<ReturnType<typeof startRecordingToolServer>>;
  let ledger: Awaited<ReturnType<typeof startRecordingApi>>;
  let publicUrl: string;
  let jwksUrl: URL;
  const resourceOf = (gateway: string) => `${publicUrl}/mcp/acme/${gateway}`;
  const clients: Client[] = [];

  const connect = async (gateway: string, sub: string, groups: string[]) => {
    const token = await idp.userAccessToken({ sub, audience: resourceOf(gateway), scope: 'finance.write', claims: { groups } });
    const client = new Client({ name: 'receipt-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resourceOf(gateway)), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  };
  /** One permitted call; answers the receipt the target got and the arguments it got with it. */
  const approvedCall = async (gateway: string, args: Record<string, unknown>) => {
    const before = finance.calls.length;
    const result = await (await connect(gateway, 'sarah', ['finance'])).callTool({ name: 'finance___approve_expense', arguments: args });
    expect(result.isError).toBeFalsy();
    expect(finance.calls).toHaveLength(before + 1);
    const received = finance.calls.at(-1)!;
    const receipt = received.meta?.[RECEIPT_META_KEY];
    expect(typeof receipt).toBe('string');
    return { receipt: receipt as string, received };
  };
  const expectations = (gateway: string, received: ReceivedCall, overrides: Partial<VerifyToolCallReceiptOptions['call']> = {}): VerifyToolCallReceiptOptions => ({
    jwks: jwksUrl,
    issuer: resourceOf(gateway),
    audience: finance.url,
    call: { arguments: received.arguments, name: received.tool, user: { iss: idp.issuer, sub: 'sarah' }, ...overrides },
  });

  beforeAll(async () => {
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, finance, ledger] = await Promise.all([startTestIdp(), startRecordingToolServer(), startRecordingApi()]);
    const key: JWK = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resourceOf('guarded'), resourceOf('plain'), resourceOf('rewriting')] });
    // An interceptor that puts a memo of its own on every expense.
    h.nc.subscribe('mandate.interceptor.acme.memo', { callback: (_error, msg) => void msg.respond(JSON.stringify({ action: 'rewrite', arguments: { ...msg.json<{ arguments: object }>().arguments, memo: 'set by the gateway' } })) });
    for (const gateway of ['guarded', 'plain', 'rewriting']) {
      const interceptors = gateway === 'rewriting' ? [{ phase: 'request', subject: 'mandate.interceptor.acme.memo' }] : [];
      await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: gateway, workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer], interceptors: interceptors as never });
      await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway, target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    }
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'plain', target: { name: 'ledger', source: { kind: 'openapi', document: ledgerApi, baseUrl: ledger.baseUrl } } });
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_100 });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'guarded', policy: 'expenses', mode: 'enforce' });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'rewriting', policy: 'expenses', mode: 'enforce' });
    const metadata = (await (await fetch(`${publicUrl}/.well-known/oauth-protected-resource/mcp/acme/guarded`)).json()) as { jwks_uri: string };
    jwksUrl = new URL(metadata.jwks_uri);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop(), ledger?.stop()]);
  });

  it('publishes the receipt keys as a JWKS, public halves only, named as jwks_uri in the protected-resource metadata', async () => {
    expect(jwksUrl.href).toBe(`${publicUrl}/.well-known/jwks.json`);
    const response = await fetch(jwksUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/jwk-set+json');
    const jwks = (await response.json()) as JSONWebKeySet;
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of jwks.keys) {
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(key.kid).toEqual(expect.any(String));
      expect(key).not.toHaveProperty('d');
    }
    expect((await fetch(jwksUrl, { method: 'POST' })).status).toBe(405);
  });

  it('gives a permitted call a receipt in _meta that verifies with the published JWKS and names the principal, decision and policy version', async () => {
    const { receipt, received } = await approvedCall('guarded', { amount: 42.5, memo: 'team lunch' });
    expect(decodeProtectedHeader(receipt)).toMatchObject({ alg: 'EdDSA', typ: RECEIPT_TYPE, kid: expect.any(String) });
    const claims = decodeJwt(receipt);
    expect(claims.exp! - claims.iat!).toBe(300);
    const verified = await verifyToolCallReceipt(receipt, expectations('guarded', received));
    expect(verified).toMatchObject({
      issuer: resourceOf('guarded'),
      tenant: 'acme',
      gateway: 'guarded',
      tool: 'finance___approve_expense',
      user: { iss: idp.issuer, sub: 'sarah' },
      agent: 'test-app',
      decision: 'allow',
      policy: { set: 'expenses', version: 1, hash: expect.stringMatching(/.+/), mode: 'enforce', decision: 'allow', determining: ['finance-under-100'] },
    });
    // The receipt's jti is the id of the call's audit record, which names the same policy version.
    await expect.poll(() => h.audit.find((r) => r.id === claims.jti)).toMatchObject({ action: 'tool-call', outcome: 'succeeded', details: { policyVersion: verified.policy?.hash, tool: 'approve_expense' } });
    // And so `mandate policy explain <jti>` explains exactly this call.
    // (The decision log's entries are written a few at a time, just after the call.)
    const explain = () => h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: claims.jti!, actor: 'auditor@acme' }).catch((error: unknown) => error);
    await expect.poll(explain, { timeout: 10_000 }).toMatchObject({ id: claims.jti });
    expect(await explain()).toMatchObject({ id: claims.jti, gateway: 'guarded', decision: 'allow', arguments: { amount: 42.5, memo: 'team lunch' }, determining: [{ id: 'finance-under-100' }] });
    // Nothing of the inbound token reaches the target with it.
    expect(JSON.stringify(claims)).not.toContain('finance.write');
  });

  it('refuses the receipt for a changed argument, another principal, another target or gateway, and once expired', async () => {
    const { receipt, received } = await approvedCall('guarded', { amount: 10 });
    const check = (options: VerifyToolCallReceiptOptions) => refusal(verifyToolCallReceipt(receipt, options));
    await expect(verifyToolCallReceipt(receipt, expectations('guarded', received))).resolves.toMatchObject({ decision: 'allow' });
    expect(await check(expectations('guarded', received, { arguments: { amount: 99 } }))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
    expect(await check(expectations('guarded', received, { arguments: { amount: 10, memo: 'added' } }))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
    expect(await check(expectations('guarded', received, { user: { iss: idp.issuer, sub: 'bob' } }))).toEqual({ code: 'access_denied', reason: 'wrong_principal' });
    expect(await check(expectations('guarded', received, { agent: 'other-app' }))).toEqual({ code: 'access_denied', reason: 'wrong_principal' });
    expect(await check(expectations('guarded', received, { name: 'delete_everything' }))).toEqual({ code: 'access_denied', reason: 'wrong_call' });
    expect(await check({ ...expectations('guarded', received), audience: 'http://127.0.0.1:1/elsewhere' })).toEqual({ code: 'unauthenticated', reason: 'wrong_audience' });
    expect(await check({ ...expectations('guarded', received), issuer: resourceOf('plain') })).toEqual({ code: 'unauthenticated', reason: 'wrong_issuer' });
    const expiredAt = new Date((decodeJwt(receipt).exp! + 60) * 1000);
    expect(await check({ ...expectations('guarded', received), currentDate: expiredAt })).toEqual({ code: 'unauthenticated', reason: 'expired' });
    // The same receipt with its digest replaced by that of other arguments: the signature no longer holds.
    const [header, , signature] = receipt.split('.');
    const swapped = Buffer.from(JSON.stringify({ ...decodeJwt(receipt), call_digest: 'A'.repeat(43) })).toString('base64url');
    expect(await refusal(verifyToolCallReceipt(`${header}.${swapped}.${signature}`, expectations('guarded', received)))).toEqual({ code: 'unauthenticated', reason: 'bad_signature' });
  });

  it('gives every permitted call a receipt, without a policy claim where no policy set is attached', async () => {
    const { receipt, received } = await approvedCall('plain', { amount: 5_000 });
    const verified = await verifyToolCallReceipt(receipt, expectations('plain', received));
    expect(verified).toMatchObject({ gateway: 'plain', decision: 'allow', user: { sub: 'sarah' } });
    expect(verified.policy).toBeUndefined();
    expect(decodeJwt(receipt)).not.toHaveProperty('policy');
  });

  it("binds exactly what the target is sent: an interceptor's rewrite, decided again, not what the agent asked for", async () => {
    const { receipt, received } = await approvedCall('rewriting', { amount: 30, memo: 'from the agent' });
    expect(received.arguments).toEqual({ amount: 30, memo: 'set by the gateway' });
    const verified = await verifyToolCallReceipt(receipt, expectations('rewriting', received));
    expect(verified.policy).toMatchObject({ set: 'expenses', decision: 'allow', determining: ['finance-under-100'] });
    expect(await refusal(verifyToolCallReceipt(receipt, expectations('rewriting', received, { arguments: { amount: 30, memo: 'from the agent' } })))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
  });

  it('sends an OpenAPI target the receipt in the Mandate-Receipt header, bound to the arguments of the call', async () => {
    const before = ledger.requests.length;
    const result = await (await connect('plain', 'sarah', ['finance'])).callTool({ name: 'ledger___book_entry', arguments: { body: { amount: 70 } } });
    expect(result.isError).toBeFalsy();
    expect(ledger.requests).toHaveLength(before + 1);
    const request = ledger.requests.at(-1)!;
    const receipt = request.headers[RECEIPT_HEADER.toLowerCase()];
    expect(typeof receipt).toBe('string');
    const verified = await verifyToolCallReceipt(receipt as string, {
      jwks: jwksUrl,
      issuer: resourceOf('plain'),
      audience: ledger.baseUrl,
      call: { arguments: { body: request.body }, name: 'book_entry', user: { iss: idp.issuer, sub: 'sarah' } },
    });
    expect(verified.tool).toBe('ledger___book_entry');
    expect(await refusal(verifyToolCallReceipt(receipt as string, { jwks: jwksUrl, issuer: resourceOf('plain'), audience: ledger.baseUrl, call: { arguments: { body: { amount: 71 } }, name: 'book_entry' } }))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
  });

  it('binds an OpenAPI call with typed parameters to the values the target rebuilds from its URL with its own parameter types', async () => {
    const before = ledger.requests.length;
    const result = await (await connect('plain', 'sarah', ['finance'])).callTool({ name: 'ledger___read_entry', arguments: { entryId: 42, includeVoided: true } });
    expect(result.isError).toBeFalsy();
    expect(ledger.requests).toHaveLength(before + 1);
    const request = ledger.requests.at(-1)!;
    const url = new URL(request.url, ledger.baseUrl);
    expect(url.pathname).toBe('/entries/42');
    expect(url.searchParams.get('includeVoided')).toBe('true');
    // As the target's OpenAPI framework parses the request: the path's text as an integer, the query's as a boolean, the absent `fields` absent.
    const rebuilt = { entryId: Number(/^\/entries\/(\d+)$/.exec(url.pathname)![1]), includeVoided: url.searchParams.get('includeVoided') === 'true' };
    const options = (args: Record<string, unknown>): VerifyToolCallReceiptOptions => ({ jwks: jwksUrl, issuer: resourceOf('plain'), audience: ledger.baseUrl, call: { arguments: args, name: 'read_entry', user: { iss: idp.issuer, sub: 'sarah' } } });
    const receipt = request.headers[RECEIPT_HEADER.toLowerCase()] as string;
    expect((await verifyToolCallReceipt(receipt, options(rebuilt))).tool).toBe('ledger___read_entry');
    // The URL's text is not what was bound: the strings "42" and "true", or an empty `fields`, fail.
    expect(await refusal(verifyToolCallReceipt(receipt, options({ entryId: '42', includeVoided: 'true' })))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
    expect(await refusal(verifyToolCallReceipt(receipt, options({ ...rebuilt, fields: '' })))).toEqual({ code: 'access_denied', reason: 'arguments_changed' });
  });

  it('sends nothing, and so no receipt, for a call policy denies', async () => {
    const before = finance.calls.length;
    await expect((await connect('guarded', 'sarah', ['finance'])).callTool({ name: 'finance___approve_expense', arguments: { amount: 150 } })).rejects.toThrow(/Denied by policy set expenses/);
    // Bob's group has no permit: the tool is hidden from him, and called by name it does not exist.
    await expect((await connect('guarded', 'bob', ['sales'])).callTool({ name: 'finance___approve_expense', arguments: { amount: 5 } })).rejects.toThrow(/Unknown tool: finance___approve_expense/);
    expect(finance.calls).toHaveLength(before);
  });

  it('drops a retired key from the JWKS once its receipts have expired: a receipt it signed no longer verifies, new ones do', async () => {
    const { receipt: old, received } = await approvedCall('guarded', { amount: 12 });
    const oldKid = decodeProtectedHeader(old).kid;
    // Another replica's ring over the same store and master keys, its clock two rotations ahead.
    const master = await loadMasterKeys({ mode: 'embedded', dataDir: h.env['MANDATE_DATA_DIR']! });
    let clock = Date.now() + 25 * 3_600_000;
    const ahead = new SigningKeyRing({
      store: await openReceiptSigningKeys(new JetStreamKvStore(h.nc)),
      cipher: new EnvelopeCipher(master.ring),
      alg: 'EdDSA',
      rotationIntervalMs: 24 * 3_600_000,
      activationDelayMs: 0,
      maxTokenLifetimeMs: 300_000,
      sealedRecordId: receiptKeyRecordId,
      now: () => clock,
    });
    await ahead.start();
    await ahead.rotateIfDue();
    clock += 25 * 3_600_000;
    const current = await ahead.rotateIfDue();
    expect(ahead.publicKeys().map((k) => k.kid)).not.toContain(oldKid);
    await new JetStreamPublisher(h.nc).publishEvent(receiptKeysChangedEvent, SYSTEM_TENANT, { kid: current!.kid });

    const published = async () => (await (await fetch(jwksUrl)).json()) as JSONWebKeySet;
    await expect.poll(async () => (await published()).keys.map((k) => k.kid), { timeout: 10_000 }).not.toContain(oldKid);
    // Verified against the key set as published now (a target's cached copy would still hold the old key until it refetches).
    const jwks = await published();
    expect(await refusal(verifyToolCallReceipt(old, { ...expectations('guarded', received), jwks }))).toEqual({ code: 'unauthenticated', reason: 'unknown_key' });
    const fresh = await approvedCall('guarded', { amount: 13 });
    expect(decodeProtectedHeader(fresh.receipt).kid).not.toBe(oldKid);
    expect((await verifyToolCallReceipt(fresh.receipt, { ...expectations('guarded', fresh.received), jwks })).decision).toBe('allow');
  });
});
