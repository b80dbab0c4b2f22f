import { Module } from '@nestjs/common';
import { gatewayToolName, POLICY_SERVICE, policyAudit, policyEndpoints, targetListEndpoint, type TenantId } from '@mandate/contracts';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import { policyEnvSchema } from './config.js';
import { PolicyAdministration } from './domain/policy-administration.js';
import { PoliciesEndpoint } from './endpoints/policies.endpoint.js';
import { POLICY_COLLECTIONS, PolicyRecords } from './store/repositories.js';

@Module({
  controllers: [PoliciesEndpoint],
  providers: [
    {
      provide: PolicyAdministration,
      inject: [DOCUMENT_STORE, JetStreamPublisher, BusClient],
      useFactory: async (store: DocumentStore, publisher: JetStreamPublisher, bus: BusClient) =>
        new PolicyAdministration({
          records: await PolicyRecords.open(store),
          audit: publisher.auditSink(policyAudit),
          events: publisher,
          // Every tool of the gateway's targets, hidden ones too: a policy may name a tool a binding hides.
          gatewayTools: async (tenant: TenantId, gateway: string) =>
            (await bus.request(targetListEndpoint, { tenant, gateway })).items.flatMap((target) => target.tools.map((tool) => ({ name: gatewayToolName(target.name, tool.name), inputSchema: tool.inputSchema }))),
        }),
    },
  ],
})
export class PolicyModule {}

export const policyService: ServiceDefinition = {
  name: POLICY_SERVICE,
  version: '0.1.0',
  description: 'Cedar policy sets per tenant, their versions, and which gateway enforces which set in which mode',
  module: PolicyModule,
  envSchema: policyEnvSchema,
  endpoints: policyEndpoints,
  collections: [...POLICY_COLLECTIONS],
};

export { policyEnvSchema } from './config.js';
