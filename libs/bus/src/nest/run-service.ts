import { randomUUID } from 'node:crypto';
import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestMicroservice } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS, type EndpointContract } from '@mandate/contracts';
import { baseEnvSchema, ConfigError, parseEnv, type BaseEnv } from '@mandate/config';
import type { z } from 'zod';
import { openDocumentStore, type DocumentStore } from '@mandate/store';
import { createLogger, enableContextPropagation, PinoNestLogger, startTelemetry, type Logger, type Telemetry } from '@mandate/telemetry';
import { connectToBus } from '../connection.js';
import { declareStreams } from '../jetstream.js';
import { onShutdownSignal } from '../shutdown.js';
import { PassThroughRpcErrors } from './pass-through-errors.filter.js';
import { ServiceRuntimeModule } from './runtime.module.js';
import { NatsServiceTransport } from './service-transport.js';

export interface ServiceDefinition {
  name: string;
  version: string;
  description: string;
  module: Type | DynamicModule;
  /** Its environment variables (the shared ones and its own), validated at start-up; the shared ones alone by default. */
  envSchema?: z.ZodObject;
  endpoints: readonly EndpointContract[];
  /** Store collections the service owns; when set, the store is opened and injectable as `DOCUMENT_STORE`. */
  collections?: readonly string[];
  /** Of those, the ones not prepared at start-up: the service opens them only where and when it uses them. */
  openedOnUse?: readonly string[];
}

export interface RunningService {
  app: INestMicroservice;
  nc: NatsConnection;
  logger: Logger;
  transport: NatsServiceTransport;
  /** Stops taking requests, finishes those in flight, drains the connection. */
  stop(): Promise<void>;
}

/**
 * Starts one Mandate service: telemetry, the NATS connection, stream declarations, the NestJS
 * application on the service transport. With `handleSignals`, SIGTERM drains it.
 */
export async function runService(
  definition: ServiceDefinition,
  env: BaseEnv,
  options: { handleSignals?: boolean; logger?: Logger; nc?: NatsConnection; /** Between the service and its store (tests inject faults there). */ wrapStore?: (store: DocumentStore) => DocumentStore } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger(definition.name, { level: env.LOG_LEVEL });
  enableContextPropagation();
  const telemetry: Telemetry | undefined =
    env.METRICS_PORT || env.OTEL_EXPORTER_OTLP_ENDPOINT
      ? await startTelemetry({
          serviceName: definition.name,
          serviceVersion: definition.version,
          ...(env.METRICS_PORT ? { prometheusPort: env.METRICS_PORT, prometheusHost: env.METRICS_HOST } : {}),
          ...(env.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
        })
      : undefined;
  const ownsConnection = !options.nc;
  const nc =
    options.nc ??
    (await connectToBus({
      servers: env.NATS_URL,
      name: `mandate-${definition.name}`,
      logger,
      ...(env.NATS_USER ? { user: env.NATS_USER, password: env.NATS_PASSWORD ?? '' } : {}),
    }));
  await declareStreams(nc, STREAMS, { replicas: env.MANDATE_MODE === 'production' ? 3 : 1 });
  const prepared = definition.collections?.filter((name) => !definition.openedOnUse?.includes(name));
  const opened = prepared ? await openDocumentStore(env, nc, prepared) : undefined;
  const store = opened && options.wrapStore ? options.wrapStore(opened) : opened;

  const transport = new NatsServiceTransport({
    connection: nc,
    service: definition.name,
    version: definition.version,
    description: definition.description,
    endpoints: definition.endpoints,
    logger,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
  });

  @Module({ imports: [ServiceRuntimeModule.forRoot({ nc, logger, env, instance: randomUUID(), store }), definition.module] })
  class ServiceRootModule {}

  const app = await NestFactory.createMicroservice(ServiceRootModule, {
    strategy: transport,
    logger: new PinoNestLogger(logger),
  });
  app.useGlobalFilters(new PassThroughRpcErrors());
  await app.listen();
  logger.info({ natsService: transport.serviceName, metrics: telemetry?.metricsUrl }, 'service listening');

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await app.close();
      await store?.close();
      if (ownsConnection) await nc.drain();
      await telemetry?.shutdown();
      logger.info('service stopped');
    })());

  if (options.handleSignals) onShutdownSignal(stop, (message) => logger.info(message));
  return { app, nc, logger, transport, stop };
}

/**
 * The whole `main.ts` of a service: load and validate configuration, run until SIGTERM. A bad
 * configuration exits with EX_CONFIG (78) and a message naming each wrong variable; a port that
 * is taken exits with 1 and one line naming its variable.
 */
export async function runServiceMain(definition: ServiceDefinition): Promise<RunningService> {
  let env: BaseEnv;
  try {
    env = parseEnv(definition.envSchema ?? baseEnvSchema, process.env) as BaseEnv;
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`${definition.name}: ${error.message}`);
      process.exit(78);
    }
    throw error;
  }
  let running: RunningService;
  try {
    running = await runService(definition, env, { handleSignals: true });
  } catch (error) {
    const taken = takenPortMessage(error, env);
    if (!taken) throw error;
    console.error(`${definition.name}: ${taken}`);
    process.exit(1);
  }
  // Started by a supervisor with an IPC channel (`mandate up`): when it is gone, however it
  // ended, the service drains and stops instead of running on unsupervised.
  if (process.send) process.once('disconnect', () => void running.stop().then(() => process.exit(0), () => process.exit(1)));
  return running;
}

/** `port 9464 (METRICS_PORT) on 127.0.0.1 is in use` for a listener that could not open its port; undefined for any other error. */
function takenPortMessage(error: unknown, env: BaseEnv): string | undefined {
  const { code, port, address } = (error ?? {}) as { code?: unknown; port?: unknown; address?: unknown };
  if (code !== 'EADDRINUSE' || typeof port !== 'number') return undefined;
  const variable = Object.entries(env).find(([name, value]) => name.endsWith('_PORT') && value === port)?.[0];
  return `port ${port}${variable ? ` (${variable})` : ''}${typeof address === 'string' ? ` on ${address}` : ''} is in use: set ${variable ?? 'the port variable'} to a free port`;
}
