import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { context } from '@opentelemetry/api';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { JetStreamPublisher, withRequestIdempotency } from '@mandate/bus';
import { apiKeyEndpoint, auditQueryEndpoint, MandateError, providerCreateEndpoint, REQUEST_HEADERS } from '@mandate/contracts';
import { MandateClient } from '@mandate/sdk';
import { natsServerMissing } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';

/*
 * A request retried with the same idempotency key (what the SDK does after `unavailable`) writes
 * its audit record once: the record's id comes from the key, the subject and the body, so the
 * retry's publish is the same message to JetStream and the trail chains it once.
 */
const missing = natsServerMissing('idempotent requests');

describe.skipIf(missing)('a request with an idempotency key', () => {
  let h: TestSystem;
  let wat: string;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'audit'] });
    const key = await h.workload('retry-agent');
    for (const name of ['weather', 'traffic']) {
      await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name, apiKey: `${name}-key-value`, allowedWorkloads: ['retry-agent'] });
    }
    wat = await h.machineWat('retry-agent', key);
  }, 60_000);
  afterAll(async () => h?.stop());

  /** The ids of the workload's api-key releases in the trail, once the audit service has chained `expected` of them. */
  async function chainedReleases(expected: number): Promise<string[]> {
    let ids: string[] = [];
    await expect
      .poll(async () => {
        const page = await h.bus.request(auditQueryEndpoint, { tenant: 'acme', workload: 'retry-agent', action: 'api-key-release', limit: 500 });
        ids = page.entries.map((entry) => entry.record.id);
        return ids.length;
      }, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(expected);
    // Anything published twice would be chained by now too: the audit service chains in order.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const page = await h.bus.request(auditQueryEndpoint, { tenant: 'acme', workload: 'retry-agent', action: 'api-key-release', limit: 500 });
    return page.entries.map((entry) => entry.record.id);
  }

  it('the same request sent three times with one key is one record; another body with the key, and requests without one, are their own', async () => {
    const before = (await chainedReleases(0)).length;
    const idempotencyKey = randomUUID();
    const weather = { tenant: 'acme', workloadToken: wat, provider: 'weather' };
    const answers = [];
    for (let n = 0; n < 3; n += 1) answers.push(await h.bus.request(apiKeyEndpoint, weather, { idempotencyKey }));
    expect(new Set(answers.map((a) => a.apiKey))).toEqual(new Set(['weather-key-value']));
    const published = h.audit.filter((r) => r.action === 'api-key-release' && r.target?.provider === 'weather');
    expect(published).toHaveLength(3);
    expect(new Set(published.map((r) => r.id)).size, 'three publishes of one record').toBe(1);

    // The key reused for another request cannot suppress that request's record.
    await h.bus.request(apiKeyEndpoint, { ...weather, provider: 'traffic' }, { idempotencyKey });
    // Without a key, each request is its own.
    await h.bus.request(apiKeyEndpoint, weather);
    await h.bus.request(apiKeyEndpoint, weather);

    const ids = await chainedReleases(before + 4);
    expect(ids.length - before).toBe(4);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain(published[0]!.id);
  });

  it('a retry that succeeds where the first attempt failed has its own record beside the failure', async () => {
    const idempotencyKey = randomUUID();
    const request = { tenant: 'acme', workloadToken: wat, provider: 'late-weather' };
    const first = await h.bus.request(apiKeyEndpoint, request, { idempotencyKey }).catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'not_found' });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'late-weather', apiKey: 'late-key-value', allowedWorkloads: ['retry-agent'] });
    expect(await h.bus.request(apiKeyEndpoint, request, { idempotencyKey })).toEqual({ apiKey: 'late-key-value' });
    await expect
      .poll(async () => {
        const page = await h.bus.request(auditQueryEndpoint, { tenant: 'acme', workload: 'retry-agent', provider: 'late-weather', action: 'api-key-release', limit: 10 });
        return page.entries.map((entry) => entry.record.outcome).sort();
      }, { timeout: 10_000 })
      .toEqual(['failed', 'succeeded']);
  });

  it('a key that is not one is refused with invalid_request naming the header, and nothing is released or written', async () => {
    const before = h.audit.length;
    for (const bad of ['short', 'x'.repeat(129), 'has spaces in it, which is no good']) {
      const error = await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'weather' }, { idempotencyKey: bad }).catch((e: unknown) => e);
      expect(error, bad).toBeInstanceOf(MandateError);
      expect((error as MandateError).code).toBe('invalid_request');
    }
    // A client that sets the header itself gets the service's answer.
    const headers = natsHeaders();
    headers.set(REQUEST_HEADERS.idempotencyKey, 'short');
    const reply = await h.nc.request(apiKeyEndpoint.subject, JSON.stringify({ tenant: 'acme', workloadToken: wat, provider: 'weather' }), { headers, timeout: 5_000 });
    const envelope = reply.json<{ ok: boolean; error?: { code: string; message: string; issues: { path: string }[] } }>();
    expect(envelope).toMatchObject({ ok: false, error: { code: 'invalid_request', issues: [{ path: `(header ${REQUEST_HEADERS.idempotencyKey})` }] } });
    expect(JSON.stringify(envelope)).not.toContain('weather-key-value');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.audit.length).toBe(before);
  });

  it('the SDK sends one key per call, the same on each of its retries', async () => {
    const client = new MandateClient(h.nc, { tenant: 'acme', workload: 'retry-agent' });
    const seen: string[] = [];
    const spy = h.nc.subscribe(apiKeyEndpoint.subject, { callback: (_error, msg) => void seen.push(msg.headers?.get(REQUEST_HEADERS.idempotencyKey) ?? '') });
    await h.nc.flush();
    await client.apiKey({ workloadToken: wat, provider: 'weather' });
    await client.apiKey({ workloadToken: wat, provider: 'weather' });
    spy.unsubscribe();
    expect(seen).toHaveLength(2);
    expect(seen.every((key) => key.length >= 16)).toBe(true);
    expect(seen[0]).not.toBe(seen[1]);
  });

  it("a retry that writes for other targets than the first attempt never takes the id of another target's record", async () => {
    const publisher = new JetStreamPublisher(h.nc);
    const body = new TextEncoder().encode('{"user":"sarah"}');
    const key = randomUUID();
    const revoke = (provider: string) => publisher.audit({ tenant: 'acme', service: 'vault', action: 'token-revoke', outcome: 'succeeded', actor: { admin: 'ops' }, target: { provider } });
    // The first attempt revoked crm and mail; its retry finds only mail left.
    const first = await context.with(withRequestIdempotency(context.active(), key, 'mandate.vault.v1.grant-revoke', body), async () => [await revoke('crm'), await revoke('mail')]);
    const retry = await context.with(withRequestIdempotency(context.active(), key, 'mandate.vault.v1.grant-revoke', body), async () => [await revoke('mail')]);
    expect(retry[0]!.id).toBe(first[1]!.id);
    expect(retry[0]!.id).not.toBe(first[0]!.id);
    // Outside a keyed request, ids are random.
    expect((await revoke('mail')).id).not.toBe(first[1]!.id);
  });

  // Last in the file: it stops the vault.
  it('with no vault answering, the SDK tries again with one key until its budget is spent, then reports unavailable', async () => {
    await h.service('vault').stop();
    const client = new MandateClient(h.nc, { tenant: 'acme', workload: 'retry-agent', requestTimeoutMs: 300, retry: { forMs: 1_000, firstDelayMs: 50 } });
    const seen: string[] = [];
    // A listener that never answers: each attempt times out, as with a replica that died holding it.
    const silent = h.nc.subscribe(apiKeyEndpoint.subject, { callback: (_error, msg) => void seen.push(msg.headers?.get(REQUEST_HEADERS.idempotencyKey) ?? '') });
    await h.nc.flush();
    const error = await client.apiKey({ workloadToken: wat, provider: 'weather' }).catch((e: unknown) => e);
    silent.unsubscribe();
    expect(error).toMatchObject({ code: 'unavailable' });
    expect(seen.length, 'attempts within one second, each timing out after 300 ms').toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeLessThanOrEqual(4);
    expect(new Set(seen).size).toBe(1);
    expect(seen[0]!.length).toBeGreaterThanOrEqual(16);
  });
});
