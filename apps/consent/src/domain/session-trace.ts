import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { contextFromTraceparent } from '@mandate/telemetry/context';

const tracer = trace.getTracer('@mandate/consent');

/**
 * Runs one consent step (the page, approve, deny, the provider's callback, the application's
 * completion) as a span of the trace of the agent's request that opened the session: the person
 * answers minutes later from a browser, but an operator following that request's trace id finds
 * the consent steps, their audit records, and the vault's code exchange and provider call in it.
 */
export function inSessionTrace<T>(traceparent: string | undefined, step: string, work: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(`consent ${step}`, { kind: SpanKind.SERVER }, contextFromTraceparent(traceparent), async (span) => {
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
