import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import { echoEndpoint, MandateError, serviceSubject, type EndpointContract } from '@mandate/contracts';
import { baseEnvSchema } from '@mandate/config';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { z } from 'zod';
import { diagnosticsService } from './diagnostics.module.js';

const missing = natsServerMissing('diagnostics service over NATS');

describe.skipIf(missing)('diagnostics service over a real nats-server', () => {
  let nats: NatsServerHandle;
  let service: RunningService;
  let nc: NatsConnection;
  let bus: BusClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = baseEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent' });
    service = await runService(diagnosticsService, env, { logger: createLogger('diagnostics', { level: 'silent' }) });
    // connectToBus, as services connect: its options (no async traces) change how errors arrive.
    nc = await connectToBus({ servers: nats.url, name: 'echo-test' });
    bus = new BusClient(nc, { defaultTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await nc?.close();
    await service?.stop();
    await nats?.stop();
  });

  it('answers a valid request with the typed result and a trace id', async () => {
    const reply = await bus.request(echoEndpoint, { message: 'hello' });
    expect(reply.message).toBe('hello');
    expect(reply.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('answers plain JSON over raw NATS, the way a Python agent would call it', async () => {
    const msg = await nc.request(echoEndpoint.subject, JSON.stringify({ message: 'raw' }), { timeout: 2_000 });
    expect(msg.json()).toMatchObject({ ok: true, result: { message: 'raw' } });
  });

  it('refuses invalid input with invalid_request naming the field, in body and service headers', async () => {
    const msg = await nc.request(echoEndpoint.subject, JSON.stringify({ message: 42, extra: true }), { timeout: 2_000 });
    const body = msg.json<{ ok: boolean; error: { code: string; issues: { path: string }[] } }>();
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.issues.map((i) => i.path)).toContain('message');
    expect(msg.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(msg.headers?.get('Nats-Service-Error')).toBe('invalid request');
  });

  it('refuses a body that is not JSON with invalid_request', async () => {
    const msg = await nc.request(echoEndpoint.subject, 'not json', { timeout: 2_000 });
    expect(msg.json()).toMatchObject({ ok: false, error: { code: 'invalid_request' } });
  });

  it('is discoverable with $SRV.PING and $SRV.INFO', async () => {
    const client = new Svcm(nc as never).client();
    const infos = [];
    for await (const info of await client.info('mandate-diagnostics')) infos.push(info);
    expect(infos).toHaveLength(1);
    expect(infos[0]?.endpoints.map((e) => e.subject)).toEqual([echoEndpoint.subject]);
    expect(infos[0]?.endpoints[0]?.queue_group).toBe('mandate-diagnostics');
  });

  it('rejects a bad request on the client before it is sent', async () => {
    const error = await bus.request(echoEndpoint, { message: '' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).code).toBe('invalid_request');
  });

  it('answers unavailable when a service does not reply in time', async () => {
    const slow = await new BusClient(nc, { defaultTimeoutMs: 200 }).request(echoEndpoint, { message: 'slow', delayMs: 1_000 }).catch((e: unknown) => e);
    expect((slow as MandateError).code).toBe('unavailable');
    expect((slow as MandateError).message).toContain('did not answer');
  });

  it('answers a subject nobody serves with unavailable quickly, not a hang', async () => {
    const nobody: EndpointContract = {
      service: 'nobody',
      operation: 'nothing',
      subject: serviceSubject('nobody', 'nothing'),
      description: 'no one serves this',
      request: z.object({}),
      response: z.object({}),
    };
    const started = performance.now();
    const error = await new BusClient(nc, { defaultTimeoutMs: 10_000 }).request(nobody, {}).catch((e: unknown) => e);
    expect((error as MandateError).code).toBe('unavailable');
    expect((error as MandateError).message).toContain('no nobody service is running');
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
