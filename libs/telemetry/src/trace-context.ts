import { randomBytes } from 'node:crypto';
import { context, isSpanContextValid, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type SpanContext, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { natsHeaderGetter, natsHeaderSetter, type HeaderCarrier } from './nats-headers.js';

/*
 * We use the W3C propagator directly rather than the global one so that `traceparent` travels on
 * every message even in a process that never started the OpenTelemetry SDK (a CLI, a test, a
 * Python agent's reply): correlation of audit records must not depend on exporters being on.
 */
const w3c = new W3CTraceContextPropagator();

/*
 * A fresh trace id per request that arrives without one: two small synchronous randomBytes calls
 * each time were a measurable share of a request's CPU, so ids are cut from a pooled buffer.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** A context that certainly has a valid span context: the active one, or a fresh random root. */
export function contextWithValidSpan(base: Context = context.active()): Context {
  const current = trace.getSpanContext(base);
  if (current && isSpanContextValid(current)) return base;
  const root: SpanContext = {
    traceId: randomHex(16),
    spanId: randomHex(8),
    traceFlags: TraceFlags.NONE,
    isRemote: false,
  };
  return trace.setSpanContext(base, root);
}

export function injectTraceContext(ctx: Context, headers: HeaderCarrier): void {
  w3c.inject(ctx, headers, natsHeaderSetter);
}

export function extractTraceContext(headers: HeaderCarrier | undefined, base: Context = context.active()): Context {
  return w3c.extract(base, headers, natsHeaderGetter);
}

/** Trace and span id of a context, for audit records and log lines. */
export function traceIds(ctx: Context): { traceId: string; spanId: string } | undefined {
  const spanContext = trace.getSpanContext(ctx);
  if (!spanContext || !isSpanContextValid(spanContext)) return undefined;
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}

/**
 * The W3C `traceparent` of a context with a valid span, to store with work that another request
 * continues later (a consent session the person answers minutes after the agent asked).
 */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  if (!traceIds(ctx)) return undefined;
  const carrier = new Map<string, string>();
  w3c.inject(ctx, carrier, mapSetter);
  return carrier.get('traceparent');
}

/**
 * A context whose parent is the span a stored `traceparent` names, so what runs in it joins that
 * trace; `base` unchanged when there is none or it is malformed.
 */
export function contextFromTraceparent(traceparent: string | undefined, base: Context = context.active()): Context {
  if (!traceparent) return base;
  return w3c.extract(base, new Map([['traceparent', traceparent]]), mapGetter);
}

/**
 * Runs `work` as a span named `name` of the trace a stored `traceparent` names: a step that
 * happens minutes later in another request (a person answering a consent page, an application
 * completing the session) is found under the trace id of the agent's request that started it.
 */
export function inTraceOf<T>(traceparent: string | undefined, tracerName: string, name: string, work: () => Promise<T>): Promise<T> {
  return trace.getTracer(tracerName).startActiveSpan(name, { kind: SpanKind.SERVER }, contextFromTraceparent(traceparent), async (span) => {
    try {
      return await work();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

const mapSetter: TextMapSetter<Map<string, string>> = {
  set: (carrier, key, value) => void carrier.set(key, value),
};

const mapGetter: TextMapGetter<Map<string, string>> = {
  get: (carrier, key) => carrier.get(key),
  keys: (carrier) => [...carrier.keys()],
};
