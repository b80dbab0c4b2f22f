import { Module, type DynamicModule } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BaseEnv } from '@mandate/config';
import type { Logger } from '@mandate/telemetry';
import type { DocumentStore } from '@mandate/store';
import { BusClient } from '../client.js';
import { JetStreamPublisher } from '../publisher.js';

/** Injection tokens for what every service gets from the runtime. */
export const NATS_CONNECTION = Symbol('NATS_CONNECTION');
export const SERVICE_LOGGER = Symbol('SERVICE_LOGGER');
export const SERVICE_ENV = Symbol('SERVICE_ENV');
export const SERVICE_INSTANCE = Symbol('SERVICE_INSTANCE');
/** The document store (JetStream KV or MongoDB, per configuration) of a service that declares collections. */
export const DOCUMENT_STORE = Symbol('DOCUMENT_STORE');

export interface ServiceRuntime {
  nc: NatsConnection;
  logger: Logger;
  env: BaseEnv;
  /** A unique id of this process, shown in `$SRV.INFO` and in replies that name an instance. */
  instance: string;
  store?: DocumentStore | undefined;
}

/**
 * Provides the connection, a `BusClient`, a `JetStreamPublisher`, the logger and the validated
 * environment to every module of a service (global, so feature modules just inject them).
 */
@Module({})
export class ServiceRuntimeModule {
  static forRoot(runtime: ServiceRuntime): DynamicModule {
    return {
      module: ServiceRuntimeModule,
      global: true,
      providers: [
        { provide: NATS_CONNECTION, useValue: runtime.nc },
        { provide: SERVICE_LOGGER, useValue: runtime.logger },
        { provide: SERVICE_ENV, useValue: runtime.env },
        { provide: SERVICE_INSTANCE, useValue: runtime.instance },
        { provide: BusClient, useValue: new BusClient(runtime.nc) },
        { provide: JetStreamPublisher, useValue: new JetStreamPublisher(runtime.nc) },
        ...(runtime.store ? [{ provide: DOCUMENT_STORE, useValue: runtime.store }] : []),
      ],
      exports: [NATS_CONNECTION, SERVICE_LOGGER, SERVICE_ENV, SERVICE_INSTANCE, BusClient, JetStreamPublisher, ...(runtime.store ? [DOCUMENT_STORE] : [])],
    };
  }
}
