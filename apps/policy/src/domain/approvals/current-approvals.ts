import { MandateError, type TenantId } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
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
 * the revision read, announced by whichever reader's write won), so every use case sees the same
 * state and none can approve or consume late.
 *
 * An expiry is announced (audited, `approval-decided` sent) at least once: it is written marked
 * unannounced and the mark is cleared after the journal has it. A reader whose announcement fails
 * still gets the expired approval; the expiry sweep, whose entry for the approval stays until the
 * mark is gone, announces it then. A crash between the journal and the clearing announces twice.
 */
export class CurrentApprovals {
  constructor(
    private readonly ports: ApprovalPorts,
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

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
    let expired: Approval;
    try {
      const written = await this.ports.records.update(tenant, approval.expire(now), stored.revision, now);
      expired = new Approval(tenant, written.value, written.revision);
    } catch (error) {
      // Another reader (or a decision just in time) wrote first: what it wrote is the state.
      if (!(error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found'))) throw error;
      const again = await this.ports.records.approval(tenant, approval.id);
      if (!again) throw new MandateError('not_found', `no approval ${approval.id}`);
      return this.current(tenant, again);
    }
    try {
      return await this.announceExpiry(expired);
    } catch (err) {
      this.logger?.warn({ err, tenant, approval: expired.id }, 'could not announce an approval expiry; the expiry sweep announces it');
      return expired;
    }
  }

  /** Audits and announces an expiry the journal does not have yet, then clears the approval's mark. */
  async announceExpiry(approval: Approval): Promise<Approval> {
    if (!approval.expiryUnannounced) return approval;
    await this.ports.journal.expired(approval.view());
    const announced = approval.announced();
    try {
      const written = await this.ports.records.update(approval.tenant, announced, approval.revision, this.ports.now());
      return new Approval(approval.tenant, written.value, written.revision);
    } catch (error) {
      // Cleared by another replica that announced it too: it is announced either way.
      if (!(error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found'))) throw error;
      return new Approval(approval.tenant, announced, approval.revision);
    }
  }
}
