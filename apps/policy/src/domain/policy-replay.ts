import { createHash } from 'node:crypto';
import { MandateError, REPLAY_LIMITS, type AuditActionOf, type AuditSink, type policyAudit, type policyReplayEndpoint, type ResponseOf, type TenantId } from '@mandate/contracts';
import { assertValidates, parsePolicySet, ToolPolicy, type ModelTool, type ParsedPolicySet } from '@mandate/tool-policy';
import type { DecisionWindow, OpenedDecision } from '../store/decision-log-reader.js';

type ReplayAnswer = ResponseOf<typeof policyReplayEndpoint>;
type ChangeGroup = ReplayAnswer['groups'][number];

export interface PolicyReplayPorts {
  decisions: { window(tenant: TenantId, gateway: string, since: Date, limit: number): Promise<DecisionWindow> };
  audit: AuditSink<AuditActionOf<typeof policyAudit>>;
  /** The tools of a gateway as its policy sees them; `not_found` for an unknown gateway. */
  gatewayTools(tenant: TenantId, gateway: string): Promise<ModelTool[]>;
  now?: () => number;
  /** Entries evaluated per slice; between slices the service answers other requests. */
  sliceSize?: number;
}

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `7d`, `12h`, `90m` back from now, or an ISO time; never in the future. */
export function replayStart(since: string, now: number): Date {
  const duration = /^(\d+)([mhd])$/.exec(since);
  const at = duration ? now - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS] : Date.parse(since);
  if (Number.isNaN(at)) throw new MandateError('invalid_request', `since must be a duration such as 7d or an ISO time, not ${since.slice(0, 64)}`);
  if (at > now) throw new MandateError('invalid_request', `since ${since} is in the future`);
  return new Date(at);
}

/**
 * Replays a candidate policy set against the calls a gateway's decision log recorded in a window:
 * each recorded request is decided again by the candidate (against the gateway's tools as they
 * are now) and compared with what was decided then. Answers the changes grouped by tool and
 * principal, with counts and a few audit record ids each, and what could not be replayed and why.
 *
 * Bounded: at most `REPLAY_LIMITS.entries` entries (oldest first; past it the answer says
 * `truncated` and where it stopped), the window no longer than the log's retention. Evaluation runs
 * in slices that each load the candidate into the one engine slot replay uses, so replays running
 * side by side in one process never evaluate against each other's sets.
 */
export class PolicyReplay {
  readonly #now: () => number;
  readonly #sliceSize: number;

  constructor(private readonly ports: PolicyReplayPorts) {
    this.#now = ports.now ?? Date.now;
    this.#sliceSize = ports.sliceSize ?? 2_000;
  }

  async replay(tenant: TenantId, gateway: string, since: string, candidate: string, actor: string | undefined): Promise<ReplayAnswer> {
    const now = this.#now();
    const from = replayStart(since, now);
    const parsed = parsePolicySet(candidate);
    const tools = await this.ports.gatewayTools(tenant, gateway);
    assertValidates(parsed, tools);
    const window = await this.ports.decisions.window(tenant, gateway, from, REPLAY_LIMITS.entries);
    const tally = new ReplayTally();
    for (let n = 0; n < window.unrecognised; n += 1) tally.skip('unrecognised');
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    for (let start = 0; start < window.entries.length; start += this.#sliceSize) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      this.#evaluateSlice(parsed, tools, byName, window.entries.slice(start, start + this.#sliceSize), tally);
    }
    const last = window.entries.at(-1)?.entry.recordedAt;
    const answer: ReplayAnswer = {
      gateway,
      from: from.toISOString(),
      to: window.truncated && last ? last : new Date(now).toISOString(),
      ...tally.summary(),
      truncated: window.truncated,
    };
    await this.ports.audit.audit({
      tenant,
      action: 'policy-replay',
      outcome: 'succeeded',
      actor: actor ? { admin: actor } : {},
      target: { resource: gateway },
      details: {
        gateway,
        from: answer.from,
        to: answer.to,
        candidateHash: createHash('sha256').update(candidate).digest('base64url'),
        evaluated: answer.evaluated,
        allowedToDenied: answer.changed.allowedToDenied,
        deniedToAllowed: answer.changed.deniedToAllowed,
      },
    });
    return answer;
  }

  /** Synchronous from load to the last decision: nothing else uses the slot meanwhile. */
  #evaluateSlice(parsed: ParsedPolicySet, tools: readonly ModelTool[], byName: ReadonlyMap<string, ModelTool>, slice: readonly OpenedDecision[], tally: ReplayTally): void {
    const candidate = ToolPolicy.load('policy-replay', 'candidate', parsed, tools);
    for (const opened of slice) {
      if ('unreadable' in opened) {
        tally.skip('unreadable');
        continue;
      }
      const { entry, request } = opened;
      const tool = byName.get(entry.tool);
      if (!tool) {
        tally.skip('tool_removed');
        continue;
      }
      const decided = candidate.decide({ user: entry.principal, claims: request.claims, scopes: request.scopes, client: request.client, gateway: entry.gateway, tool, arguments: request.arguments, now: request.now });
      tally.add(entry.id, entry.tool, entry.principal, entry.decided.decision, decided.enforced.decision);
    }
  }
}

/** The counts of one replay, and the groups of what changes. */
class ReplayTally {
  evaluated = 0;
  unchanged = 0;
  readonly changed = { allowedToDenied: 0, deniedToAllowed: 0 };
  readonly skipped: Record<string, number> = {};
  readonly #groups = new Map<string, ChangeGroup>();

  skip(reason: 'unreadable' | 'tool_removed' | 'unrecognised'): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
  }

  add(id: string, tool: string, principal: { iss: string; sub: string }, recorded: 'allow' | 'deny', candidate: 'allow' | 'deny'): void {
    this.evaluated += 1;
    if (recorded === candidate) {
      this.unchanged += 1;
      return;
    }
    const key = JSON.stringify([tool, principal.iss, principal.sub]);
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = { tool, principal: { iss: principal.iss, sub: principal.sub }, allowedToDenied: 0, deniedToAllowed: 0, samples: [] }));
    if (recorded === 'allow') {
      group.allowedToDenied += 1;
      this.changed.allowedToDenied += 1;
    } else {
      group.deniedToAllowed += 1;
      this.changed.deniedToAllowed += 1;
    }
    if (group.samples.length < REPLAY_LIMITS.samplesPerGroup) group.samples.push(id);
  }

  summary(): Pick<ReplayAnswer, 'evaluated' | 'unchanged' | 'changed' | 'skipped' | 'groups'> {
    const groups = [...this.#groups.values()].sort(
      (a, b) => b.allowedToDenied + b.deniedToAllowed - (a.allowedToDenied + a.deniedToAllowed) || a.tool.localeCompare(b.tool) || a.principal.sub.localeCompare(b.principal.sub),
    );
    return { evaluated: this.evaluated, unchanged: this.unchanged, changed: { ...this.changed }, skipped: { ...this.skipped }, groups };
  }
}
