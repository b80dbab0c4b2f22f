import type { ApprovalView, Approver, ParsedRequestOf, ResponseOf, TenantId, approvalConsumeEndpoint, approvalRequestEndpoint } from '@mandate/contracts';
import { approvalDigest, callDigest, type ApprovalRequirement } from '@mandate/tool-policy';
import type { ApprovalDecisions } from './approval-decisions.js';
import type { AttachedPolicy, LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';

export interface HeldCallPorts {
  /** The policy service's `approval-consume`: the approved approval of this exact call, used once. */
  consume(tenant: TenantId, digest: string): Promise<ResponseOf<typeof approvalConsumeEndpoint>>;
  /** The policy service's `approval-request`: idempotent per digest while one is open. */
  request(request: ParsedRequestOf<typeof approvalRequestEndpoint>): Promise<ApprovalView>;
  decisions: ApprovalDecisions;
}

export interface HeldCallOptions {
  /** The consent service's public URL, where the approvals page is; without it, the message names the CLI. */
  consentPublicUrl?: string | undefined;
  /** How long a held call waits for the decision before it answers `approval_required`; 0 answers at once. */
  waitMs: number;
  /** While a call waits, a progress notification this often (the call looks again only when a decision arrives). */
  progressEveryMs?: number;
  now?: () => number;
}

/** A call the policy permits only with a person's approval. */
export interface HeldCall {
  gateway: LoadedGateway;
  principal: Principal;
  tool: CatalogTool;
  /** Exactly what the target would be sent: what the approval binds. */
  arguments: Record<string, unknown>;
  requirement: ApprovalRequirement;
  policy: AttachedPolicy;
  determining: readonly string[];
  /** Tells the client the call is still waiting (MCP progress), when it asked for progress. */
  progress?: ((elapsedMs: number, totalMs: number, message: string) => Promise<void>) | undefined;
  /** The client can be sent to a URL (`-32042`): a user who approves their own call is sent to the page at once rather than after a wait. */
  urlElicitation?: boolean;
  /** Aborted when the client gives up: a waiting call stops waiting, and uses no approval that comes later. */
  signal?: AbortSignal | undefined;
}

export type Admission =
  /** A person approved this exact call: it proceeds, once. */
  | { kind: 'approved'; approval: ApprovalView }
  /** Not (yet) approved: the request to decide, where to decide it, and what to tell the client. */
  | { kind: 'held'; approval: ApprovalView; state: 'requested' | 'denied' | 'expired'; message: string; url?: string; userApproves: boolean };

/** The client gave up before the call was admitted: nothing was used or opened for it. */
export class CallAbandoned extends Error {
  constructor() {
    super('the client gave up on the call before it was admitted');
  }
}

const PROGRESS_EVERY_MS = 5_000;
const MAX_RENDERED_VALUE = 1024;
/** As many arguments as an approval request carries (the contract's limit). */
const MAX_RENDERED_ARGUMENTS = 256;

/**
 * Holds calls that policy permits only with a person's approval. The approval is bound to the
 * call's digest (`callDigest`: tenant, user, agent, gateway, tool and the arguments that would be
 * sent) and to who may approve it (`approvalDigest`), so a changed argument, or a policy that now
 * names other approvers, needs its own approval; and it is used once:
 * the identical call after an approval proceeds, the one after that is held again. With waiting
 * configured, a held call waits for the decision (woken by the `approval-decided` event, looking
 * again then and once at the end), telling the client it is still waiting.
 */
export class HeldCalls {
  readonly #now: () => number;

  constructor(
    private readonly ports: HeldCallPorts,
    private readonly options: HeldCallOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  async admit(call: HeldCall): Promise<Admission> {
    const tenant = call.gateway.tenant;
    const target = { name: call.tool.target, addedAt: call.gateway.targets.get(call.tool.target)?.addedAt };
    const digest = approvalDigest(callDigest({ tenant, user: call.principal.user, agent: call.principal.clientId, gateway: call.gateway.name, tool: call.tool.name, arguments: call.arguments }), call.requirement.approvers, target);
    // A client gone already (while the credential was fetched, say) uses no approval and opens no request.
    const stillWanted = () => {
      if (call.signal?.aborted) throw new CallAbandoned();
    };
    stillWanted();
    const used = await this.ports.consume(tenant, digest);
    if (used.consumed) return { kind: 'approved', approval: used.approval };
    stillWanted();
    let approval = await this.ports.request(this.#request(call, digest));
    if (approval.state === 'approved') {
      // Approved between the look and the request: use it now.
      stillWanted();
      const again = await this.ports.consume(tenant, digest);
      if (again.consumed) return { kind: 'approved', approval: again.approval };
      stillWanted();
      approval = await this.ports.request(this.#request(call, digest));
    }
    // The user who approves is sent to the page now: waiting first would keep them from it until the wait ran out.
    const sentToPage = call.urlElicitation === true && this.options.consentPublicUrl !== undefined && approval.approvers.some((approver) => approver.kind === 'user');
    if (this.options.waitMs > 0 && !sentToPage) return this.#wait(call, approval, digest);
    // The last request for this call was denied or expired: this one asks again, and says so.
    const previous = !used.consumed && (used.state === 'denied' || used.state === 'expired') ? used.approval : undefined;
    return this.#held(call, approval, 'requested', previous);
  }

  async #wait(call: HeldCall, approval: ApprovalView, digest: string): Promise<Admission> {
    const started = this.#now();
    const deadline = started + this.options.waitMs;
    const every = this.options.progressEveryMs ?? PROGRESS_EVERY_MS;
    const { signal } = call;
    let onAbort: (() => void) | undefined;
    const givenUp = signal
      ? new Promise<false>((resolve) => {
          onAbort = () => resolve(false);
          if (signal.aborted) resolve(false);
          else signal.addEventListener('abort', onAbort, { once: true });
        })
      : undefined;
    try {
      return await this.#waitFor(call, approval, digest, { started, deadline, every, givenUp });
    } finally {
      // A signal may outlive the wait (a caller's own): it keeps no listener of a wait that is over.
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async #waitFor(call: HeldCall, approval: ApprovalView, digest: string, { started, deadline, every, givenUp }: { started: number; deadline: number; every: number; givenUp: Promise<false> | undefined }): Promise<Admission> {
    const tenant = call.gateway.tenant;
    const { signal } = call;
    for (;;) {
      // Nobody would get the answer: stop, and leave an approval that comes later to the call made again.
      if (signal?.aborted) return this.#held(call, approval, 'requested');
      // Registered before looking, so a decision in between wakes this wait.
      const next = this.ports.decisions.next(tenant, approval.id);
      let woken = false;
      try {
        const answer = await this.ports.consume(tenant, digest);
        if (answer.consumed) return { kind: 'approved', approval: answer.approval };
        if ((answer.state === 'denied' || answer.state === 'expired') && answer.approval?.id === approval.id) return this.#held(call, answer.approval, answer.state);
        if (answer.state === 'none') {
          // Used meanwhile by an identical call that raced this one: this call needs its own request.
          approval = await this.ports.request(this.#request(call, digest));
          continue;
        }
        while (!woken && this.#now() < deadline && !signal?.aborted) {
          await call.progress?.(this.#now() - started, this.options.waitMs, `Waiting for ${who(approval.approvers)} to approve (request ${approval.id})`);
          const decided = next.decided(Math.min(every, deadline - this.#now()));
          woken = await (givenUp ? Promise.race([decided, givenUp]) : decided);
        }
      } finally {
        next.cancel();
      }
      if (woken || signal?.aborted) continue;
      // The bound is reached: one last look, then the call answers that it is held.
      const last = await this.ports.consume(tenant, digest);
      if (last.consumed) return { kind: 'approved', approval: last.approval };
      const state = (last.state === 'denied' || last.state === 'expired') && last.approval?.id === approval.id ? last.state : 'requested';
      return this.#held(call, last.approval ?? approval, state);
    }
  }

  #request(call: HeldCall, digest: string): ParsedRequestOf<typeof approvalRequestEndpoint> {
    return {
      tenant: call.gateway.tenant,
      gateway: call.gateway.name,
      tool: call.tool.name,
      target: call.tool.target,
      toolTitle: (call.tool.title ?? call.tool.tool).slice(0, 512),
      arguments: rendered(call.tool, call.arguments),
      user: call.principal.user,
      ...(call.principal.clientId ? { agent: call.principal.clientId.slice(0, 512) } : {}),
      approvers: [...call.requirement.approvers],
      digest,
      policy: { name: call.policy.name, version: call.policy.hash, determining: call.determining.slice(0, 64) },
      ttlSeconds: call.requirement.ttlSeconds,
    };
  }

  #held(call: HeldCall, approval: ApprovalView, state: 'requested' | 'denied' | 'expired', previous?: ApprovalView): Admission {
    const url = this.options.consentPublicUrl ? `${this.options.consentPublicUrl}/approvals/${approval.id}?tenant=${approval.tenant}` : undefined;
    const userApproves = approval.approvers.some((approver) => approver.kind === 'user');
    const where = url ? `Decide at ${url}` : `Decide with: mandate approval approve ${approval.id} --tenant ${approval.tenant}`;
    const before = previous ? `The last request for this call (${previous.id}) was ${previous.state}${previous.comment ? ` ("${previous.comment}")` : ''}. ` : '';
    const message =
      state === 'requested'
        ? `approval_required: ${before}${call.tool.name} with these arguments needs approval by ${who(approval.approvers)}. Request ${approval.id} waits until ${approval.expiresAt}. ${where}, then call the tool again with the same arguments.`
        : `approval_required: request ${approval.id} for ${call.tool.name} was ${state}${approval.comment ? ` ("${approval.comment}")` : ''}; calling again asks again.`;
    return { kind: 'held', approval, state, message, ...(url ? { url } : {}), userApproves };
  }
}

/** Who may decide, as a sentence says it. */
function who(approvers: readonly Approver[]): string {
  return approvers.map((approver) => (approver.kind === 'user' ? 'the user' : approver.kind === 'group' ? `a member of group ${approver.name}` : `someone with role ${approver.name}`)).join(' or ');
}

/**
 * The arguments as a person reads them: each with its schema title (or name) and its value as
 * text. What does not fit the request (a value past 1,024 characters, arguments past 255) is said
 * to be left out, so the approver knows the approval binds more than the page shows.
 */
function rendered(tool: CatalogTool, args: Record<string, unknown>): { name: string; title: string; value: string }[] {
  const properties = (tool.inputSchema['properties'] ?? {}) as Record<string, { title?: unknown } | undefined>;
  const entries = Object.entries(args);
  const shown = entries.length > MAX_RENDERED_ARGUMENTS ? MAX_RENDERED_ARGUMENTS - 1 : entries.length;
  const lines = entries.slice(0, shown).map(([name, value]) => {
    const title = properties[name]?.title;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    return { name, title: typeof title === 'string' ? title : name, value: text.length > MAX_RENDERED_VALUE ? `${text.slice(0, MAX_RENDERED_VALUE - 40)}… (${text.length} characters, shortened here)` : text };
  });
  if (shown < entries.length) lines.push({ name: '…', title: 'Not shown', value: `${entries.length - shown} more arguments, bound by this approval as well` });
  return lines;
}
