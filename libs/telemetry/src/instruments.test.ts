import { afterEach, describe, expect, it } from 'vitest';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { lazyInstruments } from './instruments.js';

describe('lazyInstruments', () => {
  afterEach(() => metrics.disable());

  it('records into a meter provider registered after the instruments were declared', async () => {
    // Declared at import time in a service module, before startTelemetry runs.
    const instruments = lazyInstruments('@mandate/test', (meter) => ({ calls: meter.createCounter('mandate.test.calls') }));
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    instruments().calls.add(2, { outcome: 'ok' });
    await reader.forceFlush();
    const exported = exporter.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
    expect(exported.find((m) => m.descriptor.name === 'mandate.test.calls')?.dataPoints[0]?.value).toBe(2);
  });
});
