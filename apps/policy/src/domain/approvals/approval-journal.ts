import { approvalDecidedEvent, approvalRequestedEvent, type ApprovalView, type AuditActionOf, type AuditSink, type EventSink, type TenantId, type policyAudit, type VerifiedApprover } from '@mandate/contracts';
import { lazyInstruments } from '@mandate/telemetry';

type PolicyAction = AuditActionOf<typeof policyAudit>;

const instruments = lazyInstruments('@mandate/policy', (meter) => ({
  approvals: meter.createCounter('mandate.policy.approvals', { description: 'Approval requests and what became of them, by gateway, tool and outcome' }),
}));

/**
 * Tells the world what became of an approval: one audit record each time (never the arguments,
 * only the digest that binds them), the events approvers and waiting agents listen to, and the
 * metrics. A decision's comment is a person's words, bounded by the contract, and kept in the record.
 */
export class ApprovalJournal {
  constructor(
    private readonly audit: AuditSink<PolicyAction>,
    private readonly events: EventSink,
  ) {}

  async requested(view: ApprovalView): Promise<void> {
    await this.#record(view, 'approval-request', 'succeeded', 'requested', { user: view.user, ...(view.agent ? { workload: view.agent } : {}) });
    await this.events.publishEvent(approvalRequestedEvent, view.tenant, {
      id: view.id,
      gateway: view.gateway,
      tool: view.tool,
      user: view.user,
      approvers: view.approvers,
      bindingMessage: noticeOf(view),
      expiresAt: view.expiresAt,
    });
  }

  async decided(view: ApprovalView & { state: 'approved' | 'denied' }, person: VerifiedApprover): Promise<void> {
    await this.#record(view, 'approval-decide', 'succeeded', view.state, { user: { iss: person.iss, sub: person.sub } }, { decision: view.state, ...(view.comment ? { comment: view.comment } : {}) });
    await this.events.publishEvent(approvalDecidedEvent, view.tenant, { id: view.id, state: view.state, digest: view.digest });
  }

  async consumed(view: ApprovalView): Promise<void> {
    await this.#record(view, 'approval-consume', 'succeeded', 'consumed', { user: view.user });
  }

  async expired(view: ApprovalView): Promise<void> {
    await this.#record(view, 'approval-expire', 'succeeded', 'expired', { user: view.user });
    await this.events.publishEvent(approvalDecidedEvent, view.tenant, { id: view.id, state: 'expired', digest: view.digest });
  }

  /** Someone tried to decide and may not (or could not be verified): the attempt is on the record. */
  async refused(tenant: TenantId, id: string, view: ApprovalView | undefined, reason: string, person: { iss: string; sub: string } | undefined): Promise<void> {
    if (view) instruments().approvals.add(1, { gateway: view.gateway, tool: view.tool, outcome: 'refused' });
    await this.audit.audit({
      tenant,
      action: 'approval-refuse',
      outcome: 'denied',
      reason,
      actor: person ? { user: { iss: person.iss, sub: person.sub } } : {},
      target: { resource: id },
      details: { approval: id, ...(view ? { gateway: view.gateway, tool: view.tool } : {}) },
    });
  }

  async #record(view: ApprovalView, action: PolicyAction, outcome: 'succeeded', metricOutcome: string, actor: { user?: { iss: string; sub: string }; workload?: string }, extra: Record<string, string> = {}): Promise<void> {
    instruments().approvals.add(1, { gateway: view.gateway, tool: view.tool, outcome: metricOutcome });
    await this.audit.audit({
      tenant: view.tenant,
      action,
      outcome,
      actor,
      target: { resource: view.id },
      details: { approval: view.id, gateway: view.gateway, tool: view.tool, digest: view.digest, state: view.state, policySet: view.policy.name, ...extra },
    });
  }
}

/**
 * The event's message: what waits and for whom, never the arguments. Events are kept in a stream
 * every subscriber of the tenant reads; the arguments are shown only to the people who sign in to
 * the approvals page.
 */
function noticeOf(view: ApprovalView): string {
  const agent = view.agent ? ` by agent ${view.agent}` : '';
  return `${view.toolTitle || view.tool} on ${view.target} for ${view.user.sub}${agent} waits for approval until ${view.expiresAt.slice(0, 16).replace('T', ' ')} UTC`.slice(0, 1024);
}
