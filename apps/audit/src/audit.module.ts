import { Module } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { AUDIT_SERVICE, auditTrailEndpoints } from '@mandate/contracts';
import { DOCUMENT_STORE, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { AuditTrail } from './audit.assembly.js';
import { auditEnvSchema } from './config.js';
import { AuditEndpoint } from './endpoints/audit.endpoint.js';
import { AUDIT_COLLECTIONS, AUDIT_COLLECTIONS_OPENED_ON_USE } from './store/trail-repository.js';

@Module({
  controllers: [AuditEndpoint],
  providers: [
    {
      provide: AuditTrail,
      inject: [SERVICE_ENV, NATS_CONNECTION, DOCUMENT_STORE, SERVICE_LOGGER],
      useFactory: (env: unknown, nc: NatsConnection, store: DocumentStore, logger: Logger) =>
        // The runtime hands every service the shared settings; ours are parsed from the same source.
        AuditTrail.assemble({ env: auditEnvSchema.parse(env), nc, store, logger }),
    },
  ],
})
export class AuditModule {}

export const auditService: ServiceDefinition = {
  // `mandate-audit` on the bus (as `mandate up` expects of apps/audit); its subjects are `mandate.audit-trail.v1.*`.
  name: AUDIT_SERVICE,
  version: '0.1.0',
  description: 'The audit trail: append-only, hash-chained per tenant, signed digests, queries and verification',
  module: AuditModule,
  envSchema: auditEnvSchema,
  endpoints: auditTrailEndpoints,
  collections: [...AUDIT_COLLECTIONS],
  openedOnUse: [...AUDIT_COLLECTIONS_OPENED_ON_USE],
};

// What the benchmark and tests outside this app reach for.
export { AuditTrail } from './audit.assembly.js';
export { auditEnvSchema, type AuditEnv } from './config.js';
export { TrailRepository } from './store/trail-repository.js';
