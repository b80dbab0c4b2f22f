import { Module } from '@nestjs/common';
import { approvalEndpoints, POLICY_SERVICE, policyAudit, policyEndpoints } from '@mandate/contracts';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, useCaseProviders, type ServiceDefinition } from '@mandate/bus';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@mandate/telemetry';
import type { DocumentStore } from '@mandate/store';
import { Approvals } from './approvals.assembly.js';
import { policyEnvSchema, type PolicyEnv } from './config.js';
import { DecisionLogUseCases } from './decision-log.assembly.js';
import { gatewayToolsOver } from './gateway-tools.js';
import { DecisionExplanation } from './domain/decision-explanation.js';
import { PolicyReplay } from './domain/policy-replay.js';
import { ConsumeApproval } from './domain/approvals/consume-approval.js';
import { DecideApproval } from './domain/approvals/decide-approval.js';
import { GetApproval, GetApprovalStatus, ListApprovals } from './domain/approvals/read-approvals.js';
import { RequestApproval } from './domain/approvals/request-approval.js';
import { PolicyAdministration } from './domain/policy-administration.js';
import { ConsumeApprovalEndpoint, DecideApprovalEndpoint, GetApprovalEndpoint, GetApprovalStatusEndpoint, ListApprovalsEndpoint, RequestApprovalEndpoint } from './endpoints/approvals.endpoint.js';
import { DecisionExplanationEndpoint, PolicyReplayEndpoint } from './endpoints/decisions.endpoint.js';
import { PoliciesEndpoint } from './endpoints/policies.endpoint.js';
import { PolicyTestsEndpoint } from './endpoints/policy-tests.endpoint.js';
import { PolicyTests } from './domain/policy-tests.js';
import { assemblePolicyTests } from './policy-tests.assembly.js';
import { APPROVAL_COLLECTIONS } from './store/approval-records.js';
import { POLICY_COLLECTIONS, PolicyRecords } from './store/repositories.js';

@Module({
  controllers: [PoliciesEndpoint, PolicyReplayEndpoint, DecisionExplanationEndpoint, RequestApprovalEndpoint, ConsumeApprovalEndpoint, GetApprovalEndpoint, GetApprovalStatusEndpoint, ListApprovalsEndpoint, DecideApprovalEndpoint, PolicyTestsEndpoint],
  providers: [
    { provide: PolicyTests, inject: [DOCUMENT_STORE, BusClient], useFactory: (store: DocumentStore, bus: BusClient) => assemblePolicyTests(store, bus) },
    {
      provide: PolicyAdministration,
      inject: [DOCUMENT_STORE, JetStreamPublisher, BusClient],
      useFactory: async (store: DocumentStore, publisher: JetStreamPublisher, bus: BusClient) =>
        new PolicyAdministration({
          records: await PolicyRecords.open(store),
          audit: publisher.auditSink(policyAudit),
          events: publisher,
          gatewayTools: gatewayToolsOver(bus),
        }),
    },
    {
      provide: Approvals,
      inject: [DOCUMENT_STORE, JetStreamPublisher, BusClient, SERVICE_ENV, SERVICE_LOGGER],
      useFactory: (store: DocumentStore, publisher: JetStreamPublisher, bus: BusClient, env: PolicyEnv, logger: Logger) =>
        Approvals.assemble({ store, publisher, bus, sweepEveryMs: env.POLICY_APPROVAL_SWEEP_SECONDS * 1000, logger }),
    },
    ...useCaseProviders(Approvals, [RequestApproval, ConsumeApproval, GetApproval, ListApprovals, DecideApproval, GetApprovalStatus]),
    {
      provide: DecisionLogUseCases,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER],
      useFactory: (env: PolicyEnv, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger) => DecisionLogUseCases.assemble({ env, nc, bus, store, publisher, logger }),
    },
    ...useCaseProviders(DecisionLogUseCases, [PolicyReplay, DecisionExplanation]),
  ],
})
export class PolicyModule {}

export const policyService: ServiceDefinition = {
  name: POLICY_SERVICE,
  version: '0.1.0',
  description: 'Cedar policy sets per tenant, their versions, and which gateway enforces which set in which mode',
  module: PolicyModule,
  envSchema: policyEnvSchema,
  endpoints: [...policyEndpoints, ...approvalEndpoints],
  collections: [...POLICY_COLLECTIONS, ...APPROVAL_COLLECTIONS],
};

export { policyEnvSchema } from './config.js';
