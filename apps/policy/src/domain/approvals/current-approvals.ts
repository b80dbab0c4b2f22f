import { MandateError, type TenantId } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { ApprovalRecords } from '../../store/approval-records.js';
import { Approval, type ApprovalDocument } from './approval.js';
import type { ApprovalJournal } from './approval-journal.js';

export interface ApprovalPorts {
  records: ApprovalRecords;
  journal: ApprovalJournal;
  /** Milliseconds since the epoch; injected so tests freeze time. */
  now: () => number;
}

/**
 * Approvals as they stand now: one read past its expiry is moved to `expired` first (written over
 * the revision read, announced once by whichever reader's write won), so every use case sees the
 * same state and none can approve or consume late.
 */
export class CurrentApprovals {
  constructor(private readonly ports: ApprovalPorts) {}

  async find(tenant: TenantId, id: string): Promise<Approval | undefined> {
    const stored = await this.ports.records.approval(tenant, id);
    return stored ? this.current(tenant, stored) : undefined;
  }

  async get(tenant: TenantId, id: string): Promise<Approval> {
    const approval = await this.find(tenant, id);
    if (!approval) throw new MandateError('not_found', `no approval ${id}`);
    return approval;
  }

  async current(tenant: TenantId, stored: StoredDocument<ApprovalDocument>): Promise<Approval> {
    const approval = new Approval(tenant, stored.value, stored.revision);
    const now = this.ports.now();
    if (!approval.lapsed(now)) return approval;
    try {
      const written = await this.ports.records.update(tenant, approval.expire(now), stored.revision, now);
      const expired = new Approval(tenant, written.value, written.revision);
      await this.ports.journal.expired(expired.view());
      return expired;
    } catch (error) {
      // Another reader (or a decision just in time) wrote first: what it wrote is the state.
      if (!(error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found'))) throw error;
      const again = await this.ports.records.approval(tenant, approval.id);
      if (!again) throw new MandateError('not_found', `no approval ${approval.id}`);
      return this.current(tenant, again);
    }
  }
}
