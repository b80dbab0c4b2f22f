import type { OnModuleDestroy } from '@nestjs/common';
import type { BusClient, JetStreamPublisher, UseCaseAssembly } from '@mandate/bus';
import { authorizeEndpoint, gatewayGetEndpoint, policyAudit } from '@mandate/contracts';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { ApprovalExpirySweep } from './domain/approvals/approval-expiry-sweep.js';
import { ApprovalJournal } from './domain/approvals/approval-journal.js';
import { ApproverTokens } from './domain/approvals/approver-tokens.js';
import { ConsumeApproval } from './domain/approvals/consume-approval.js';
import { CurrentApprovals } from './domain/approvals/current-approvals.js';
import { DecideApproval } from './domain/approvals/decide-approval.js';
import { GetApproval, GetApprovalStatus, ListApprovals } from './domain/approvals/read-approvals.js';
import { RequestApproval } from './domain/approvals/request-approval.js';
import { ApprovalRecords } from './store/approval-records.js';

export interface ApprovalsDependencies {
  store: DocumentStore;
  publisher: JetStreamPublisher;
  bus: BusClient;
  now?: () => number;
  /** Every this often, lapsed approvals are expired (0: only when `sweep` is called). */
  sweepEveryMs?: number;
  logger?: Logger;
}

/** The approval use cases of the policy service, sharing one repository, journal and clock, and the sweep that expires lapsed approvals. */
export class Approvals implements UseCaseAssembly, OnModuleDestroy {
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly useCases: readonly [RequestApproval, ConsumeApproval, GetApproval, ListApprovals, DecideApproval, GetApprovalStatus],
    readonly expirySweep: ApprovalExpirySweep,
  ) {}

  static async assemble(deps: ApprovalsDependencies): Promise<Approvals> {
    const ports = { records: await ApprovalRecords.open(deps.store), journal: new ApprovalJournal(deps.publisher.auditSink(policyAudit), deps.publisher), now: deps.now ?? Date.now };
    const current = new CurrentApprovals(ports, deps.logger);
    const tokens = new ApproverTokens({
      gatewayOf: async (tenant, gateway) => {
        const { workload, resourceUrl } = await deps.bus.request(gatewayGetEndpoint, { tenant, name: gateway });
        return { workload, resourceUrl };
      },
      authorize: (tenant, workload, token) => deps.bus.request(authorizeEndpoint, { tenant, workload, token }),
    });
    const approvals = new Approvals(
      [new RequestApproval(ports, current), new ConsumeApproval(ports, current), new GetApproval(current), new ListApprovals(ports, current), new DecideApproval(ports, current, tokens), new GetApprovalStatus(current)],
      new ApprovalExpirySweep(ports, current, deps.logger),
    );
    if (deps.sweepEveryMs) {
      approvals.#timer = setInterval(() => void approvals.expirySweep.sweep().catch((err: unknown) => deps.logger?.warn({ err }, 'the approval expiry sweep failed; it runs again')), deps.sweepEveryMs);
      approvals.#timer.unref();
    }
    return approvals;
  }

  onModuleDestroy(): Promise<number> | undefined {
    clearInterval(this.#timer);
    return this.expirySweep.idle();
  }
}
