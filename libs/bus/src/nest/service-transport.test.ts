import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller, Module } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { context, trace } from '@opentelemetry/api';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { defineEndpoint, MandateError, type ErrorCode } from '@mandate/contracts';
import { createLogger, startTelemetry, type Telemetry } from '@mandate/telemetry';
import { freePort, natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { BusClient } from '../client.js';
import { runService, type RunningService } from './run-service.js';
import type { MandateRpcContext } from './rpc-context.js';

const failEndpoint = defineEndpoint({
  service: 'transport-test',
  operation: 'fail',
  description: 'throws what it is told to',
  request: z.object({ kind: z.enum(['not_found', 'plain-error', 'bad-reply', 'details', 'multi-line']) }),
  response: z.object({ ok: z.boolean() }),
});

const traceEndpoint = defineEndpoint({
  service: 'transport-test',
  operation: 'trace',
  description: 'returns the trace ids it sees',
  request: z.object({}),
  response: z.object({ traceId: z.string(), activeTraceId: z.string().optional() }),
});

const SECRET = 'sk_live_THIS_SHOULD_NEVER_BE_SEEN';

@Controller()
class TestEndpoints {
  @MessagePattern(failEndpoint.subject)
  fail(@Payload() request: { kind: string }): unknown {
    switch (request.kind) {
      case 'not_found':
        throw new MandateError('not_found', 'no such workload');
      case 'details':
        throw new MandateError('consent_required', 'the user must consent first', { details: { sessionId: 's-1' } });
      case 'multi-line':
        throw new MandateError('invalid_request', 'the document does not parse:\nline 3: unexpected token\r\nline 4');
      case 'bad-reply':
        return { ok: 'yes', token: SECRET };
      default:
        throw new Error(`database said: password=${SECRET}`);
    }
  }

  @MessagePattern(traceEndpoint.subject)
  trace(@Ctx() ctx: MandateRpcContext) {
    const active = trace.getSpanContext(context.active())?.traceId;
    return { traceId: ctx.traceId, ...(active ? { activeTraceId: active } : {}) };
  }
}

@Module({ controllers: [TestEndpoints] })
class TestModule {}

const missing = natsServerMissing('NestJS service transport');

describe.skipIf(missing)('NatsServiceTransport', () => {
  let nats: NatsServerHandle;
  let service: RunningService;
  let nc: NatsConnection;
  let bus: BusClient;
  let telemetry: Telemetry;
  let metricsPort: number;
  const logLines: string[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    metricsPort = await freePort();
    // The SDK must be up before the service: it registers the context manager and meter provider.
    telemetry = await startTelemetry({ serviceName: 'transport-test', prometheusPort: metricsPort });
    const env = baseEnvSchema.parse({ NATS_URL: nats.url });
    const logger = createLogger('transport-test', { destination: { write: (line: string) => void logLines.push(line) } as never });
    service = await runService(
      { name: 'transport-test', version: '1.0.0', description: 'test', module: TestModule, endpoints: [failEndpoint, traceEndpoint] },
      env,
      { logger },
    );
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    bus = new BusClient(nc, { defaultTimeoutMs: 3_000 });
  });

  afterAll(async () => {
    await nc?.close();
    await service?.stop();
    await telemetry?.shutdown();
    await nats?.stop();
  });

  async function codeOf(kind: string): Promise<{ code: ErrorCode; message: string; error: MandateError }> {
    const error = (await bus.request(failEndpoint, { kind: kind as never }).catch((e: unknown) => e)) as MandateError;
    expect(error).toBeInstanceOf(MandateError);
    return { code: error.code, message: error.message, error };
  }

  it('passes a MandateError through with its code, message, details and numeric header', async () => {
    expect(await codeOf('not_found')).toMatchObject({ code: 'not_found', message: 'no such workload' });
    const { error } = await codeOf('details');
    expect(error.code).toBe('consent_required');
    expect(error.details).toEqual({ sessionId: 's-1' });
    const raw = await nc.request(failEndpoint.subject, JSON.stringify({ kind: 'not_found' }));
    expect(raw.headers?.get('Nats-Service-Error-Code')).toBe('404');
  });

  it('answers an error whose message has line breaks (which no header may hold), the message whole in the body', async () => {
    expect(await codeOf('multi-line')).toMatchObject({ code: 'invalid_request', message: 'the document does not parse:\nline 3: unexpected token\r\nline 4' });
    const raw = await nc.request(failEndpoint.subject, JSON.stringify({ kind: 'multi-line' }));
    expect(raw.headers?.get('Nats-Service-Error')).toBe('the document does not parse: line 3: unexpected token line 4');
  });

  it('turns an unexpected error into internal without leaking its message to caller or log', async () => {
    const { code, message } = await codeOf('plain-error');
    expect(code).toBe('internal');
    expect(message).toBe('internal error');
    expect(logLines.some((line) => line.includes('unhandled error in handler'))).toBe(true);
  });

  it('refuses to send a reply outside the contract (a stray token field is not leaked)', async () => {
    const raw = await nc.request(failEndpoint.subject, JSON.stringify({ kind: 'bad-reply' }));
    expect(raw.string()).not.toContain(SECRET);
    expect(raw.json()).toMatchObject({ ok: false, error: { code: 'internal' } });
  });

  it('never writes the secret into any log line, even from an error message', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((line) => line.includes(SECRET))).toEqual([]);
    expect(logLines.some((line) => line.includes('password=[redacted]'))).toBe(true);
  });

  it('continues the caller trace across NATS: one trace id on both sides', async () => {
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('agent request', async (span) => {
      const reply = await bus.request(traceEndpoint, {});
      expect(reply.traceId).toBe(span.spanContext().traceId);
      expect(reply.activeTraceId).toBe(span.spanContext().traceId);
      span.end();
    });
  });

  it('adopts the traceparent of a plain NATS caller', async () => {
    const { headers } = await import('@nats-io/transport-node');
    const h = headers();
    h.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const reply = await nc.request(traceEndpoint.subject, '{}', { headers: h, timeout: 2_000 });
    expect(reply.json<{ result: { traceId: string } }>().result.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('starts a fresh trace for a caller that sent none', async () => {
    const a = (await nc.request(traceEndpoint.subject, '{}')).json<{ result: { traceId: string } }>();
    const b = (await nc.request(traceEndpoint.subject, '{}')).json<{ result: { traceId: string } }>();
    expect(a.result.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.result.traceId).not.toBe(b.result.traceId);
  });

  it('exports request duration per endpoint on the Prometheus endpoint', async () => {
    await bus.request(traceEndpoint, {});
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/rpc_server_call_duration(?:_seconds)?_count\{[^}]*rpc_method="trace"[^}]*\} \d+/);
    expect(text).toMatch(/rpc_server_call_duration(?:_seconds)?_count\{[^}]*mandate_outcome="not_found"[^}]*\}/);
  });

  it('comes back by itself after nats-server restarts', async () => {
    await nats.kill();
    const restarted = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    nats = restarted;
    const deadline = Date.now() + 15_000;
    let reply: { traceId: string } | undefined;
    while (!reply && Date.now() < deadline) {
      reply = await bus.request(traceEndpoint, {}, { timeoutMs: 500 }).catch(() => undefined);
      if (!reply) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply?.traceId).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe.skipIf(missing)('NatsServiceTransport start-up', () => {
  it('refuses to start a handler that has no endpoint contract', async () => {
    const nats = await startNatsServer();
    try {
      @Controller()
      class Stray {
        @MessagePattern('mandate.transport-test.v1.unknown')
        unknown() {
          return {};
        }
      }
      @Module({ controllers: [Stray] })
      class StrayModule {}
      const env = baseEnvSchema.parse({ NATS_URL: nats.url });
      await expect(
        runService({ name: 'stray', version: '1.0.0', description: 'x', module: StrayModule, endpoints: [traceEndpoint] }, env, {
          logger: createLogger('stray', { level: 'silent' }),
        }),
      ).rejects.toThrow(/no endpoint contract/);
    } finally {
      await nats.stop();
    }
  });
});
