import type { ApprovalStatus, ApprovalView, ParsedRequestOf, ResponseOf, TenantId, approvalListEndpoint } from '@mandate/contracts';
import type { ApprovalPorts, CurrentApprovals } from './current-approvals.js';

/** One approval, as it stands now. */
export class GetApproval {
  constructor(private readonly current: CurrentApprovals) {}

  async get(tenant: TenantId, id: string): Promise<ApprovalView> {
    return (await this.current.get(tenant, id)).view();
  }
}

/** One approval's state and times only: what agent code waiting on it may know (its arguments are for the people who decide). */
export class GetApprovalStatus {
  constructor(private readonly current: CurrentApprovals) {}

  async status(tenant: TenantId, id: string): Promise<ApprovalStatus> {
    const { state, expiresAt, decidedAt } = (await this.current.get(tenant, id)).view();
    return { tenant, id, state, expiresAt, ...(decidedAt ? { decidedAt } : {}) };
  }
}

type ListRequest = Omit<ParsedRequestOf<typeof approvalListEndpoint>, 'tenant'>;

/** Store pages read at most per list call, so a filter that matches little cannot make one call read everything. */
const MAX_PAGES_READ = 20;

/**
 * A page of a tenant's approvals, newest first, filtered by state, gateway, and (for the
 * approvals page) by who may decide. A filtered page may be shorter than `limit` while
 * `nextCursor` says more follow.
 */
export class ListApprovals {
  constructor(
    private readonly ports: ApprovalPorts,
    private readonly current: CurrentApprovals,
  ) {}

  async list(tenant: TenantId, request: ListRequest): Promise<ResponseOf<typeof approvalListEndpoint>> {
    const items: ApprovalView[] = [];
    let cursor = request.cursor;
    for (let read = 0; read < MAX_PAGES_READ && items.length < request.limit; read++) {
      const page = await this.ports.records.page(tenant, request.limit - items.length, cursor);
      for (const stored of page.items) {
        const approval = await this.current.current(tenant, stored);
        if (request.state && approval.state !== request.state) continue;
        if (request.gateway && approval.document.gateway !== request.gateway) continue;
        if (request.approver && !approval.decidableBy(request.approver)) continue;
        items.push(approval.view());
      }
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    return { items, ...(cursor ? { nextCursor: cursor } : {}) };
  }
}
