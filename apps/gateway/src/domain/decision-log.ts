import { decisionSealId, MAX_SEALED_DECISION_CHARS, type DecisionEntry, type SealedDecisionRequest } from '@mandate/contracts';
import { claimsCedarReads, type Decided } from '@mandate/tool-policy';
import type { ToolCallRequest } from './tool-call.js';
import type { CatalogTool } from './tool-catalog.js';

export interface DecisionLogPorts {
  /** Seals a request for one entry (libs/crypto envelope encryption, `sealId` as AAD). */
  seal(plaintext: string, sealId: string): string;
  /** Publishes an entry; the call does not wait for it. */
  publish(entry: DecisionEntry): Promise<void>;
  /** An entry that could not be written (never with its content). */
  dropped(reason: 'backlog' | 'too_large' | 'publish_failed' | 'no_record_id', error?: unknown): void;
}

interface Pending {
  tool: CatalogTool;
  decided: Decided;
  at: number;
}

/** Entries queued or being published at most; past it an entry is dropped rather than let a slow bus grow memory. */
const MAX_IN_FLIGHT = 1_000;
/** How long an entry waits to be written with the others that came meanwhile. */
export const WRITE_INTERVAL_MS = 10;

interface Queued {
  request: ToolCallRequest;
  pending: Pending;
  id: string;
}

/**
 * Writes the decision log (libs/contracts decision-log.ts): for each call a policy set decided,
 * what Cedar saw, sealed, keyed by the id of the call's audit record. Two steps, because the id
 * is known only once that record is written: `decided` remembers the decision of a request,
 * `audited` writes the entry for it.
 *
 * The call never waits for the log: entries are sealed and published together every
 * {@link WRITE_INTERVAL_MS} (so that work is never between a call and its answer, even in a process
 * that also runs the caller), and a publish that fails is dropped and counted. That is safe because
 * the audit record, written before the answer, is the record of the call; the log only feeds
 * replay and explain, which say so when an entry is missing. `drain` writes what is queued at once
 * (at shutdown).
 */
export class DecisionLog {
  /** By request object: a request's pending decision goes when the request does. */
  readonly #pending = new WeakMap<ToolCallRequest, Pending>();
  #inFlight = 0;
  #queue: Queued[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #writing = new Set<Promise<void>>();

  constructor(private readonly ports: DecisionLogPorts) {}

  /** `at` is the time Cedar was told (`context.time`). */
  decided(request: ToolCallRequest, tool: CatalogTool, decided: Decided, at: number): void {
    this.#pending.set(request, { tool, decided, at });
  }

  /** `written` is the audit record as the sink stored it: its id links the entry to it. */
  audited(request: ToolCallRequest, written: unknown): void {
    const pending = this.#pending.get(request);
    if (!pending) return;
    this.#pending.delete(request);
    const id = recordIdOf(written);
    if (!id) return this.ports.dropped('no_record_id');
    if (this.#inFlight >= MAX_IN_FLIGHT) return this.ports.dropped('backlog');
    this.#inFlight += 1;
    this.#queue.push({ request, pending, id });
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.#writeQueued(), WRITE_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  /** Writes what is queued now and waits until every entry being written is published or dropped. */
  async drain(): Promise<void> {
    this.#writeQueued();
    await Promise.all([...this.#writing]);
  }

  #writeQueued(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const queued = this.#queue;
    this.#queue = [];
    for (const { request, pending, id } of queued) {
      const writing: Promise<void> = this.#write(request, pending, id)
        .catch((error: unknown) => this.ports.dropped('publish_failed', error))
        .finally(() => {
          this.#inFlight -= 1;
          this.#writing.delete(writing);
        });
      this.#writing.add(writing);
    }
  }

  async #write(request: ToolCallRequest, { tool, decided, at }: Pending, id: string): Promise<void> {
    const { gateway, principal } = request;
    const policy = gateway.policy;
    if (!policy || policy === 'unloadable') return;
    const sealed: SealedDecisionRequest = {
      claims: claimsCedarReads(principal.claims),
      scopes: [...principal.scopes],
      ...(principal.clientId ? { client: principal.clientId } : {}),
      arguments: request.arguments,
      now: at,
    };
    const sealedRequest = this.ports.seal(JSON.stringify(sealed), decisionSealId(gateway.tenant, gateway.name, id));
    if (sealedRequest.length > MAX_SEALED_DECISION_CHARS) return this.ports.dropped('too_large');
    await this.ports.publish({
      id,
      tenant: gateway.tenant,
      gateway: gateway.name,
      recordedAt: new Date(at).toISOString(),
      tool: tool.name,
      principal: { iss: principal.user.iss, sub: principal.user.sub },
      policySet: policy.name,
      policyVersion: policy.hash,
      mode: policy.mode,
      decided: { decision: decided.enforced.decision, determining: decided.enforced.determining },
      ...(decided.withLogOnly ? { withLogOnly: { decision: decided.withLogOnly.decision, determining: decided.withLogOnly.determining } } : {}),
      sealed: sealedRequest,
    });
  }
}

function recordIdOf(written: unknown): string | undefined {
  const id = written && typeof written === 'object' ? (written as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id : undefined;
}
