import type { BusClient } from '@mandate/bus';
import { approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint, type ApprovalState, type ApprovalView, type TenantId, type VerifiedApprover } from '@mandate/contracts';

export interface ApprovalDecision {
  tenant: TenantId;
  id: string;
  decision: 'approve' | 'deny';
  comment?: string | undefined;
  approver: VerifiedApprover;
}

/**
 * The policy service's approvals, over NATS: it owns them and decides who may decide; the
 * approvals page only reads them and passes on a person's decision, as that person, signed in here.
 */
export class PolicyApprovals {
  constructor(private readonly bus: BusClient) {}

  get(tenant: TenantId, id: string): Promise<ApprovalView> {
    return this.bus.request(approvalGetEndpoint, { tenant, id });
  }

  /** The newest `limit` requests (in `state`, or in any) this person may decide. */
  async decidableBy(tenant: TenantId, approver: VerifiedApprover, state: ApprovalState | undefined, limit: number): Promise<ApprovalView[]> {
    return (await this.bus.request(approvalListEndpoint, { tenant, approver, limit, ...(state ? { state } : {}) })).items;
  }

  decide({ comment, ...decision }: ApprovalDecision): Promise<ApprovalView> {
    return this.bus.request(approvalDecideEndpoint, { ...decision, ...(comment ? { comment } : {}), actor: 'approvals-page' });
  }
}
