import { MandateError, type ResponseOf, type TenantId, type approvalConsumeEndpoint } from '@mandate/contracts';
import type { ApprovalPorts, CurrentApprovals } from './current-approvals.js';

type ConsumeAnswer = ResponseOf<typeof approvalConsumeEndpoint>;

/**
 * Uses the approved approval of an exact call once (for the gateway). The write is a
 * compare-and-set on the revision read: of two identical calls racing, one consumes it and the
 * other finds it consumed, so it is held again (`none`: nothing usable for this digest).
 */
export class ConsumeApproval {
  constructor(
    private readonly ports: ApprovalPorts,
    private readonly current: CurrentApprovals,
  ) {}

  async consume(tenant: TenantId, digest: string): Promise<ConsumeAnswer> {
    const index = await this.ports.records.digestIndex(tenant, digest);
    const approval = index ? await this.current.find(tenant, index.value.approval) : undefined;
    if (!approval) return { consumed: false, state: 'none' };
    switch (approval.state) {
      case 'requested':
      case 'denied':
      case 'expired':
        return { consumed: false, state: approval.state, approval: approval.view() };
      case 'consumed':
        return { consumed: false, state: 'none' };
      case 'approved':
        break;
    }
    const now = this.ports.now();
    try {
      const written = await this.ports.records.update(tenant, approval.consume(now), approval.revision, now);
      const view = { tenant, ...written.value };
      await this.ports.journal.consumed(view);
      return { consumed: true, approval: view };
    } catch (error) {
      if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) return { consumed: false, state: 'none' };
      throw error;
    }
  }
}
