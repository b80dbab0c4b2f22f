import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { generateKeyPair, exportJWK } from 'jose';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import {
  authorizerSetEndpoint,
  MandateError,
  workloadCreateEndpoint,
  workloadDeleteEndpoint,
  workloadGetEndpoint,
  workloadListEndpoint,
  workloadUpdateEndpoint,
  type RequestOf,
} from '@mandate/contracts';
import { baseEnvSchema } from '@mandate/config';
import { createLogger } from '@mandate/telemetry';
import { auditRecordsOf, natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { directoryService } from './directory.module.js';

const missing = natsServerMissing('directory service over NATS');

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return error.code;
}

const discoveryUrl = 'https://idp.example.com/.well-known/openid-configuration';

describe.skipIf(missing)('directory service over a real nats-server', () => {
  let nats: NatsServerHandle;
  let service: RunningService;
  let nc: NatsConnection;
  let bus: BusClient;
  let audit: Subscription;
  let events: Subscription;
  const seen: { audit: { subject: string; body: Record<string, unknown> }[]; events: { subject: string; body: Record<string, unknown> }[] } = { audit: [], events: [] };

  const create = (request: RequestOf<typeof workloadCreateEndpoint>) => bus.request(workloadCreateEndpoint, request);

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = baseEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent' });
    service = await runService(directoryService, env, { logger: createLogger('directory', { level: 'silent' }) });
    nc = await connectToBus({ servers: nats.url, name: 'directory-test' });
    bus = new BusClient(nc, { defaultTimeoutMs: 5_000 });
    audit = nc.subscribe('mandate.audit.>', { callback: (_e, m) => void seen.audit.push(...auditRecordsOf(m).map((body) => ({ subject: m.subject, body }))) });
    events = nc.subscribe('mandate.evt.directory.>', { callback: (_e, m) => void seen.events.push({ subject: m.subject, body: m.json() }) });
  });

  afterAll(async () => {
    audit?.unsubscribe();
    events?.unsubscribe();
    await nc?.close();
    await service?.stop();
    await nats?.stop();
  });

  it('creates a workload, reads it back, and audits and announces the change', async () => {
    const created = await create({
      tenant: 'acme',
      name: 'sales-brief.agent_1',
      description: 'Prepares sales briefs',
      allowedReturnUrls: ['https://app.acme.example/return', 'http://localhost:3000/cb'],
      tags: { team: 'sales' },
      actor: 'ops@acme',
    });
    expect(created).toMatchObject({ tenant: 'acme', name: 'sales-brief.agent_1', allowUserIdTokens: false, authorizer: null, publicKeys: { keys: [] } });
    expect(await bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'sales-brief.agent_1' })).toEqual(created);

    await nc.flush();
    await expect.poll(() => seen.audit.find((r) => r.subject === 'mandate.audit.acme.directory.workload-create')).toBeTruthy();
    const record = seen.audit.find((r) => r.subject === 'mandate.audit.acme.directory.workload-create')!.body;
    expect(record).toMatchObject({ outcome: 'succeeded', actor: { admin: 'ops@acme', workload: 'sales-brief.agent_1' } });
    expect(record['traceId']).toMatch(/^[0-9a-f]{32}$/);
    await expect.poll(() => seen.events.find((e) => e.body['data'] && (e.body['data'] as { name: string }).name === 'sales-brief.agent_1')).toMatchObject({
      subject: 'mandate.evt.directory.workload-changed.acme',
      body: { tenant: 'acme', data: { change: 'created' } },
    });
  });

  it('keeps names unique per tenant, and tenants apart', async () => {
    await create({ tenant: 'acme', name: 'twin' });
    expect(await codeOf(create({ tenant: 'acme', name: 'twin' }))).toBe('conflict');
    // The same name in another tenant is another workload; neither tenant sees the other's.
    await create({ tenant: 'globex', name: 'twin', description: 'globex twin' });
    expect((await bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'twin' })).description).toBe('');
    expect(await codeOf(bus.request(workloadGetEndpoint, { tenant: 'globex', name: 'sales-brief.agent_1' }))).toBe('not_found');
    expect(await codeOf(bus.request(workloadDeleteEndpoint, { tenant: 'globex', name: 'sales-brief.agent_1' }))).toBe('not_found');
    const globex = await bus.request(workloadListEndpoint, { tenant: 'globex' });
    expect(globex.items.map((w) => w.name)).toEqual(['twin']);
  });

  it('lists a tenant page by page', async () => {
    for (let i = 0; i < 7; i++) await create({ tenant: 'paged', name: `agent-${i}` });
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await bus.request(workloadListEndpoint, { tenant: 'paged', limit: 3, ...(cursor ? { cursor } : {}) });
      names.push(...page.items.map((w) => w.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `agent-${i}`));
    expect(await codeOf(bus.request(workloadListEndpoint, { tenant: 'paged', cursor: 'not-a-cursor!' }))).toBe('invalid_request');
  });

  it('updates only the named fields, conditionally on the revision when asked', async () => {
    const created = await create({ tenant: 'acme', name: 'updatable', description: 'v1', tags: { a: '1' } });
    const updated = await bus.request(workloadUpdateEndpoint, {
      tenant: 'acme',
      name: 'updatable',
      set: { description: 'v2', allowUserIdTokens: true },
      expectedRevision: created.revision,
    });
    expect(updated).toMatchObject({ description: 'v2', allowUserIdTokens: true, tags: { a: '1' } });
    expect(updated.revision).not.toBe(created.revision);
    expect(await codeOf(bus.request(workloadUpdateEndpoint, { tenant: 'acme', name: 'updatable', set: { description: 'v3' }, expectedRevision: created.revision }))).toBe('conflict');
    expect((await bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'updatable' })).description).toBe('v2');
    expect(await codeOf(bus.request(workloadUpdateEndpoint, { tenant: 'acme', name: 'updatable', set: {} }))).toBe('invalid_request');
    expect(await codeOf(bus.request(workloadUpdateEndpoint, { tenant: 'acme', name: 'nobody-here', set: { description: 'x' } }))).toBe('not_found');
  });

  it('deletes, and a deleted workload is gone', async () => {
    const created = await create({ tenant: 'acme', name: 'short-lived' });
    expect(await codeOf(bus.request(workloadDeleteEndpoint, { tenant: 'acme', name: 'short-lived', expectedRevision: created.revision + 100 }))).toBe('conflict');
    expect(await bus.request(workloadDeleteEndpoint, { tenant: 'acme', name: 'short-lived', actor: 'ops' })).toEqual({ deleted: true });
    expect(await codeOf(bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'short-lived' }))).toBe('not_found');
    expect(await codeOf(bus.request(workloadDeleteEndpoint, { tenant: 'acme', name: 'short-lived' }))).toBe('not_found');
  });

  it('sets and removes an inbound authorizer config', async () => {
    await create({ tenant: 'acme', name: 'guarded' });
    const set = await bus.request(authorizerSetEndpoint, {
      tenant: 'acme',
      name: 'guarded',
      authorizer: {
        discoveryUrl,
        allowedAudiences: ['https://api.acme.example'],
        requiredClaims: [
          { claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' },
          { claim: 'groups', valueType: 'string[]', operator: 'contains', value: 'agents' },
          { claim: 'region', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] },
        ],
      },
    });
    expect(set.authorizer).toMatchObject({ discoveryUrl, allowedAudiences: ['https://api.acme.example'], allowedClients: [], allowedScopes: [] });
    const cleared = await bus.request(authorizerSetEndpoint, { tenant: 'acme', name: 'guarded', authorizer: null });
    expect(cleared.authorizer).toBeNull();
  });

  it('accepts usable public keys and refuses private, weak or broken ones', async () => {
    const ec = await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey);
    const ed = await exportJWK((await generateKeyPair('EdDSA', { extractable: true })).publicKey);
    const created = await create({ tenant: 'acme', name: 'keyed', publicKeys: { keys: [{ ...ec, kid: 'k1' }, { ...ed, kid: 'k2', alg: 'EdDSA' }] as never } });
    expect(created.publicKeys.keys.map((k) => k.kid)).toEqual(['k1', 'k2']);

    const pair = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(pair.privateKey);
    // jose will not make a weak key; node:crypto will.
    const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const cases = [
      { keys: [{ ...privateJwk, kid: 'p' }] },
      { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' }] },
      { keys: [{ ...weakRsa, kid: 'w' }] },
      { keys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'b' }] },
      { keys: [{ ...ec, kid: 'same' }, { ...ed, kid: 'same' }] },
      { keys: [{ ...ec, kid: 'bad\u0000kid' }] },
    ];
    for (const publicKeys of cases) {
      expect(await codeOf(create({ tenant: 'acme', name: 'bad-keys', publicKeys: publicKeys as never }))).toBe('invalid_request');
    }
    expect(await codeOf(bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'bad-keys' }))).toBe('not_found');
  });

  describe('refuses bad input with invalid_request and changes nothing', () => {
    const bad: [string, unknown][] = [
      ['a name too short', { tenant: 'acme', name: 'ab' }],
      ['a name with a slash', { tenant: 'acme', name: 'a/b/c' }],
      ['a name with a wildcard', { tenant: 'acme', name: 'agent.*' }],
      ['a name too long', { tenant: 'acme', name: 'a'.repeat(256) }],
      ['a reserved tenant', { tenant: 'system', name: 'agent' }],
      ['an upper-case tenant', { tenant: 'ACME', name: 'agent' }],
      ['an http return URL', { tenant: 'acme', name: 'agent', allowedReturnUrls: ['http://app.example.com/cb'] }],
      ['a javascript: return URL', { tenant: 'acme', name: 'agent', allowedReturnUrls: ['javascript:alert(1)'] }],
      ['a scheme-relative return URL', { tenant: 'acme', name: 'agent', allowedReturnUrls: ['//evil.example/cb'] }],
      ['a return URL with credentials', { tenant: 'acme', name: 'agent', allowedReturnUrls: ['https://user@app.example.com/cb'] }],
      ['a return URL with a fragment', { tenant: 'acme', name: 'agent', allowedReturnUrls: ['https://app.example.com/cb#x'] }],
      ['a discovery URL without the well-known suffix', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl: 'https://idp.example.com/', allowedAudiences: ['a'] } }],
      ['a discovery URL over http', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl: 'http://idp.example.com/.well-known/openid-configuration', allowedAudiences: ['a'] } }],
      ['an authorizer without audiences or clients', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl } }],
      ['equals with an array value', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl, allowedClients: ['c'], requiredClaims: [{ claim: 'x', valueType: 'string', operator: 'equals', value: ['a'] }] } }],
      ['contains on a string claim', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl, allowedClients: ['c'], requiredClaims: [{ claim: 'x', valueType: 'string', operator: 'contains', value: 'a' }] } }],
      ['an unknown operator', { tenant: 'acme', name: 'agent', authorizer: { discoveryUrl, allowedClients: ['c'], requiredClaims: [{ claim: 'x', valueType: 'string', operator: 'matches', value: 'a' }] } }],
      ['an unknown field', { tenant: 'acme', name: 'agent', admin: true }],
    ];
    it.each(bad)('%s', async (_what, request) => {
      const reply = await nc.request(workloadCreateEndpoint.subject, JSON.stringify(request), { timeout: 5_000 });
      const body = reply.json<{ ok: boolean; error?: { code: string; issues?: unknown[] } }>();
      expect(body.ok).toBe(false);
      expect(body.error?.code).toBe('invalid_request');
      expect(body.error?.issues?.length).toBeGreaterThan(0);
      expect(await codeOf(bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'agent' }))).toBe('not_found');
    });
  });
});
