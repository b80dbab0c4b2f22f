import { MandateError, type ApprovalView, type ParsedRequestOf, type TenantId, type VerifiedApprover, type approvalDecideEndpoint } from '@mandate/contracts';
import type { Approval } from './approval.js';
import { ApproverTokenRefused, type ApproverTokens } from './approver-tokens.js';
import type { ApprovalPorts, CurrentApprovals } from './current-approvals.js';

type DecideRequest = Omit<ParsedRequestOf<typeof approvalDecideEndpoint>, 'tenant'>;

/**
 * A person approves or denies a requested approval. Only an allowed approver may (the user
 * themself for `user`, a holder of the group or role otherwise), as verified by a trusted caller
 * (`approver`) or by the authorizer (`approverToken`); anyone else is refused with
 * `access_denied` and the attempt is audited. A decision is written over the revision read, so
 * of two approvers deciding at once one wins and the other gets `conflict`.
 */
export class DecideApproval {
  constructor(
    private readonly ports: ApprovalPorts,
    private readonly current: CurrentApprovals,
    private readonly tokens: ApproverTokens,
  ) {}

  async decide(tenant: TenantId, request: DecideRequest): Promise<ApprovalView> {
    const approval = await this.current.get(tenant, request.id);
    const person = await this.#person(tenant, approval, request);
    if (!approval.decidableBy(person)) {
      await this.ports.journal.refused(tenant, approval.id, approval.view(), 'not_an_approver', person);
      throw new MandateError('access_denied', `this person may not decide approval ${approval.id}`);
    }
    const now = this.ports.now();
    const next = request.decision === 'approve' ? approval.approve(person, now, request.comment) : approval.deny(person, now, request.comment);
    let written: Awaited<ReturnType<typeof this.ports.records.update>>;
    try {
      written = await this.ports.records.update(tenant, next, approval.revision, now);
    } catch (error) {
      if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) {
        const latest = await this.current.get(tenant, approval.id);
        throw new MandateError('conflict', `approval ${approval.id} is already ${latest.state}`);
      }
      throw error;
    }
    const view = { tenant, ...written.value } as ApprovalView & { state: 'approved' | 'denied' };
    await this.ports.journal.decided(view, person);
    return view;
  }

  async #person(tenant: TenantId, approval: Approval, request: DecideRequest): Promise<VerifiedApprover> {
    if (request.approver) return request.approver;
    try {
      return await this.tokens.verify(tenant, approval.document.gateway, request.approverToken!);
    } catch (error) {
      if (!(error instanceof ApproverTokenRefused)) throw error;
      await this.ports.journal.refused(tenant, approval.id, approval.view(), 'approver_unverified', undefined);
      throw new MandateError('access_denied', error.message);
    }
  }
}
