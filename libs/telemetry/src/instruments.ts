import { metrics, type Meter, type MeterProvider } from '@opentelemetry/api';

/**
 * Metric instruments made from the meter provider that is current when they are first used, and
 * made again if it changes. The OpenTelemetry metrics API has no proxy provider: a meter taken at
 * import time, before `startTelemetry` registers the SDK, stays a no-op for ever.
 */
export function lazyInstruments<T>(meterName: string, create: (meter: Meter) => T): () => T {
  let provider: MeterProvider | undefined;
  let made: T | undefined;
  return () => {
    const current = metrics.getMeterProvider();
    if (made === undefined || current !== provider) {
      provider = current;
      made = create(current.getMeter(meterName));
    }
    return made;
  };
}
