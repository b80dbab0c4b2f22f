import { createInbox, headers, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { MandateError } from '@mandate/contracts';
import type { CreateOutcome } from './port.js';

/** JetStream refuses a write whose subject already has a message: `wrong last sequence` (the codes 10071 and 10164 both say it). */
export const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);
const NO_RESPONDERS = 503;

export interface BulkWrite {
  /** The KV subject of the key (`$KV.<bucket>.<key>`). */
  readonly subject: string;
  readonly data: Uint8Array;
}

interface PubAckBody {
  seq?: number;
  error?: { code?: number; err_code?: number; description?: string };
}

/**
 * Creates many KV records at once. Each write is what `kv.create` sends (a JetStream publish that
 * expects no earlier message on its subject), but all of them are answered on one reply
 * subscription with one timer per call, instead of a request apiece: the per-request bookkeeping
 * of `kv.create` cost about as much CPU as the write itself (measured 40 vs 18 us per record on the
 * audit trail's hot path).
 */
export class KvBulkCreator {
  readonly #waiting = new Map<string, (reply: Msg) => void>();
  readonly #expectNew: MsgHdrs;
  #inbox: string | undefined;
  #subscription: Subscription | undefined;
  #next = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5_000,
  ) {
    this.#expectNew = headers();
    this.#expectNew.set('Nats-Expected-Last-Subject-Sequence', '0');
  }

  /** Resolves, in order, to `created` or `conflict`; anything else rejects the whole call (`unavailable`). */
  create(writes: readonly BulkWrite[]): Promise<CreateOutcome[]> {
    if (writes.length === 0) return Promise.resolve([]);
    const inbox = this.#listen();
    return new Promise((resolve, reject) => {
      const outcomes = new Array<CreateOutcome>(writes.length);
      const tokens: string[] = [];
      let remaining = writes.length;
      let settled = false;
      const finish = (error?: MandateError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const token of tokens) this.#waiting.delete(token);
        if (error) reject(error);
        else resolve(outcomes);
      };
      const timer = setTimeout(() => finish(new MandateError('unavailable', 'the store did not answer in time')), this.timeoutMs);
      try {
        writes.forEach((write, i) => {
          const token = String(this.#next++);
          tokens.push(token);
          this.#waiting.set(token, (reply) => {
            const outcome = outcomeOf(reply);
            if (outcome instanceof MandateError) return finish(outcome);
            outcomes[i] = outcome;
            if (--remaining === 0) finish();
          });
          this.nc.publish(write.subject, write.data, { reply: `${inbox}.${token}`, headers: this.#expectNew });
        });
      } catch (cause) {
        finish(new MandateError('unavailable', 'the store did not answer', { cause }));
      }
    });
  }

  close(): void {
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
  }

  #listen(): string {
    if (this.#inbox && this.#subscription && !this.#subscription.isClosed()) return this.#inbox;
    // The prefix the connection's own requests use: a NATS user may subscribe only to its own inboxes.
    const prefix = (this.nc as Partial<{ options: { inboxPrefix?: string } }>).options?.inboxPrefix;
    const inbox = createInbox(prefix);
    const start = inbox.length + 1;
    this.#subscription = this.nc.subscribe(`${inbox}.*`, {
      callback: (_error, reply) => {
        const settle = this.#waiting.get(reply.subject.slice(start));
        settle?.(reply);
      },
    });
    this.#inbox = inbox;
    return inbox;
  }
}

function outcomeOf(reply: Msg): CreateOutcome | MandateError {
  if (reply.headers?.code === NO_RESPONDERS) return new MandateError('unavailable', 'the store is not there (no responders)');
  let body: PubAckBody;
  try {
    body = reply.json<PubAckBody>();
  } catch (cause) {
    return new MandateError('unavailable', 'the store answered something unreadable', { cause });
  }
  if (!body.error) return typeof body.seq === 'number' ? 'created' : new MandateError('unavailable', 'the store answered without a sequence');
  if (WRONG_LAST_SEQUENCE.has(body.error.err_code ?? 0)) return 'conflict';
  return new MandateError('unavailable', `the store refused a write: ${body.error.description ?? 'no description'}`);
}
