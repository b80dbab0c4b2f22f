import { Module, type DynamicModule } from '@nestjs/common';
import { SCHEDULER_SERVICE, schedulerEndpoints } from '@mandate/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, useCaseProviders, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { schedulerEnvSchema } from './config.js';
import { JobAdministration } from './domain/job-administration.js';
import { JobsEndpoint } from './endpoints/jobs.endpoint.js';
import { SchedulerApp, type SchedulerDependencies } from './scheduler.assembly.js';
import { SCHEDULER_COLLECTIONS } from './store/scheduler-records.js';

const SCHEDULER_TEST_HOOKS = Symbol('SCHEDULER_TEST_HOOKS');

export type SchedulerTestHooks = Pick<SchedulerDependencies, 'now' | 'afterAction'>;

@Module({
  controllers: [JobsEndpoint],
  providers: [
    {
      provide: SchedulerApp,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER, { token: SCHEDULER_TEST_HOOKS, optional: true }],
      useFactory: (env: unknown, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger, hooks?: SchedulerTestHooks) =>
        SchedulerApp.assemble({ env: schedulerEnvSchema.parse(env), nc, bus, store, publisher, logger, ...hooks }),
    },
    ...useCaseProviders(SchedulerApp, [JobAdministration]),
  ],
})
export class SchedulerModule {
  /** The scheduler with an injected clock and a fault after the action (tests only). */
  static withTestHooks(hooks: SchedulerTestHooks): DynamicModule {
    return { module: SchedulerModule, providers: [{ provide: SCHEDULER_TEST_HOOKS, useValue: hooks }] };
  }
}

export const schedulerService: ServiceDefinition = {
  name: SCHEDULER_SERVICE,
  version: '0.1.0',
  description: 'Cron- and event-triggered background jobs run as their own workload: at-least-once, idempotency keys, retries, dead letters',
  module: SchedulerModule,
  envSchema: schedulerEnvSchema,
  endpoints: schedulerEndpoints,
  collections: [...SCHEDULER_COLLECTIONS],
};

export { schedulerEnvSchema } from './config.js';
