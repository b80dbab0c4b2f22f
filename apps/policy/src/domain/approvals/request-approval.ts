import { randomBytes } from 'node:crypto';
import { MandateError, type ApprovalView, type ParsedRequestOf, type TenantId, type approvalRequestEndpoint } from '@mandate/contracts';
import type { ApprovalDocument } from './approval.js';
import type { ApprovalPorts, CurrentApprovals } from './current-approvals.js';

type ApprovalRequest = Omit<ParsedRequestOf<typeof approvalRequestEndpoint>, 'tenant'>;

/** Ids count the time down (in milliseconds), so the store's id order is newest first. */
const TIME_CEILING = 36 ** 10 - 1;

/**
 * Holds a call for approval (for the gateway). Idempotent per digest while an approval is open
 * (requested, or approved and unused): the same call asked again gets the same request, so an
 * agent retrying does not flood approvers. Two racing requests for one digest open one approval:
 * the digest index is written over the revision read, and the loser's approval is discarded
 * before anyone hears of it.
 */
export class RequestApproval {
  constructor(
    private readonly ports: ApprovalPorts,
    private readonly current: CurrentApprovals,
  ) {}

  async request(tenant: TenantId, request: ApprovalRequest): Promise<ApprovalView> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const index = await this.ports.records.digestIndex(tenant, request.digest);
      const existing = index ? await this.current.find(tenant, index.value.approval) : undefined;
      const now = this.ports.now();
      if (existing?.open(now)) return existing.view();
      const document = opened(request, now);
      await this.ports.records.scheduleExpiry(tenant, document, now);
      await this.ports.records.create(tenant, document, now);
      try {
        await this.ports.records.pointDigest(tenant, request.digest, document, index?.revision, now);
      } catch (error) {
        await this.ports.records.discard(tenant, document.id);
        if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) continue;
        throw error;
      }
      const view: ApprovalView = { tenant, ...document };
      await this.ports.journal.requested(view);
      return view;
    }
    throw new MandateError('conflict', 'approval requests for this call kept racing; try again');
  }
}

function opened(request: ApprovalRequest, now: number): ApprovalDocument {
  const expiresAt = new Date(now + request.ttlSeconds * 1000).toISOString();
  return {
    id: `apr_${(TIME_CEILING - now).toString(36).padStart(10, '0')}${randomBytes(16).toString('base64url')}`,
    state: 'requested',
    gateway: request.gateway,
    tool: request.tool,
    target: request.target,
    toolTitle: request.toolTitle,
    arguments: request.arguments,
    user: request.user,
    ...(request.agent ? { agent: request.agent } : {}),
    approvers: request.approvers,
    bindingMessage: bindingMessage(request, expiresAt),
    digest: request.digest,
    policy: request.policy,
    requestedAt: new Date(now).toISOString(),
    expiresAt,
  };
}

/** What is being approved, in one line a person reads on the page, in a chat message or on a pager. */
function bindingMessage(request: ApprovalRequest, expiresAt: string): string {
  const args = request.arguments.map((argument) => `${argument.title} ${argument.value}`).join(', ');
  const agent = request.agent ? ` by agent ${request.agent}` : '';
  const message = `${request.toolTitle || request.tool} on ${request.target} for ${request.user.sub}${agent}${args ? `: ${args}` : ''} (until ${expiresAt.slice(0, 16).replace('T', ' ')} UTC)`;
  return message.length > 1024 ? `${message.slice(0, 1023)}…` : message;
}
