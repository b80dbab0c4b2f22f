import { describe, expect, it } from 'vitest';
import { ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { contextFromTraceparent, contextWithValidSpan, traceIds, traceparentOf } from './trace-context.js';

describe('traceparent kept for later (traceparentOf / contextFromTraceparent)', () => {
  it('round-trips a span context: what continues later has the same trace, with the stored span as parent', () => {
    const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.SAMPLED });
    const stored = traceparentOf(ctx);
    expect(stored).toBe(`00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
    const continued = contextFromTraceparent(stored, ROOT_CONTEXT);
    expect(traceIds(continued)).toEqual({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) });
    expect(trace.getSpanContext(continued)?.isRemote).toBe(true);
  });

  it('has nothing to store without a valid span, and continues nothing from what is absent or malformed', () => {
    expect(traceparentOf(ROOT_CONTEXT)).toBeUndefined();
    expect(traceIds(contextFromTraceparent(undefined, ROOT_CONTEXT))).toBeUndefined();
    for (const bad of ['', 'garbage', `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01`, `00-${'a'.repeat(31)}-${'b'.repeat(16)}-01`]) {
      expect(traceIds(contextFromTraceparent(bad, ROOT_CONTEXT)), bad).toBeUndefined();
    }
    // A fresh root from contextWithValidSpan is storable too.
    expect(traceparentOf(contextWithValidSpan(ROOT_CONTEXT))).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });
});
