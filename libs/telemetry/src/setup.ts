import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, metrics } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export interface TelemetryOptions {
  serviceName: string;
  serviceVersion?: string;
  /** Serve `/metrics` for Prometheus on this port (0 or undefined: no server). */
  prometheusPort?: number;
  prometheusHost?: string;
  /** OTLP/HTTP base URL, e.g. http://collector:4318. Unset: nothing is exported. */
  otlpEndpoint?: string;
}

export interface Telemetry {
  /** Where Prometheus can scrape, when a port was given. */
  readonly metricsUrl: string | undefined;
  shutdown(): Promise<void>;
}

let propagationEnabled = false;

/**
 * Makes the active context follow `await`s (AsyncLocalStorage) even when no tracing SDK runs, so
 * the trace id a request arrived with is the one its audit records carry. Idempotent.
 */
export function enableContextPropagation(): void {
  if (propagationEnabled) return;
  propagationEnabled = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

/**
 * Starts tracing and metrics for one process. Registers the AsyncLocalStorage context manager
 * and the W3C propagator globally, so spans started by `libs/bus` nest across `await`s.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: `mandate-${options.serviceName}`,
    [ATTR_SERVICE_VERSION]: options.serviceVersion ?? '0.1.0',
  });

  const spanProcessors: SpanProcessor[] = [];
  if (options.otlpEndpoint) {
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${trimSlash(options.otlpEndpoint)}/v1/traces` })));
  }
  const tracerProvider = new NodeTracerProvider({ resource, spanProcessors });
  tracerProvider.register();

  const readers: IMetricReader[] = [];
  let metricsUrl: string | undefined;
  if (options.prometheusPort) {
    const host = options.prometheusHost ?? '127.0.0.1';
    const exporter = await new Promise<PrometheusExporter>((resolve, reject) => {
      const created: PrometheusExporter = new PrometheusExporter({ port: options.prometheusPort, host }, (error) =>
        error ? reject(error) : resolve(created),
      );
    });
    readers.push(exporter);
    metricsUrl = `http://${host}:${options.prometheusPort}/metrics`;
  }
  if (options.otlpEndpoint) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${trimSlash(options.otlpEndpoint)}/v1/metrics` }),
        exportIntervalMillis: 15_000,
      }),
    );
  }
  const meterProvider = new MeterProvider({ resource, readers });
  metrics.setGlobalMeterProvider(meterProvider);

  return {
    metricsUrl,
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
