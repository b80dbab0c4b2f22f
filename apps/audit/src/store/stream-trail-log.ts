import { jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type StoredMsg, type StreamConfig } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { declareStreams, isStreamNotFound } from '@mandate/bus';
import { AUDIT_TRAIL_HEADERS, AUDIT_TRAIL_STREAM, MandateError, trailDigestsSubject, trailEntriesSubject, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import { isWrongLastSequence } from '@mandate/store';
import { deflateEntries, fragmentsOf, inflateEntries, PAGE, type StoredFragment, type TrailLog } from './trail-log.js';

/*
 * The trail as an append-only JetStream stream, `MANDATE_AUDIT_TRAIL` (contracts: its shape and
 * why). Per tenant, two subjects: `…<tenant>.entries`, one message per fragment (its entries' JSON
 * deflated, headers naming its first sequence and count), and `…<tenant>.digests`, one message per
 * signed digest (header: its number).
 *
 * Appending is conditional on the subject's last message (`Nats-Expected-Last-Subject-Sequence`):
 * fragments starting at n + 1 are written only when the chain as read holds entry n and not n + 1,
 * after the message that was the subject's last when that was read, so two writers that both read
 * head n both try n + 1 and JetStream lets one through. Where the subject ends, this instance
 * remembers from its own appends (no read in the steady state); when another writer moved on, the
 * append is refused (`conflict`) and the next one reads again. What the last message's headers
 * claim decides nothing: a message someone else put at the end cannot stop the chain.
 *
 * Reading an entry finds the message that holds it: the subject's last message, or else a binary
 * search over the stream's sequences (each probe the subject's next message from a sequence) for
 * the last fragment that starts at or before it; a range is then read forward from there. Headers
 * place a fragment, and the entries it holds each name their own sequence, which the verifier
 * compares with the place: a message edited, dropped or moved reads as edited, missing or
 * reordered entries. Reads never trust what this instance remembers: a stream rewritten under it
 * (by someone who deleted it and wrote it again) is read as it now is.
 *
 * A trail written before the stream (JetStream KV, `audit-trail`) is read through `legacy` for the
 * sequences and digest numbers below the first the stream holds, and the stream continues it.
 */

/** Numbers (sequences, digest numbers) read as one stretch, and how many stretches at once. */
const STRETCH = 16 * PAGE;
const STRETCHES_IN_PARALLEL = 8;
/** How many messages a read looks past one out of line (a gap, or a message someone else put there) for the chain's next fragment. */
const LOOK_AHEAD = 8;

/** A message of the stream, placed by its headers: it holds the numbers `first`..`first + count - 1`. */
interface Placed {
  seq: number;
  first: number;
  count: number;
  message: StoredMsg;
}

/** Where a subject ends: its last message (0 when it has none) and the last number it holds. */
interface SubjectEnd {
  seq: number;
  last: number;
}

export interface StreamTrailLogOptions {
  /** 1 on the embedded single node; 3 on the production cluster. */
  replicas: number;
  /** The trail as written before the stream, when there is one. */
  legacy?: TrailLog;
}

export class StreamTrailLog implements TrailLog {
  readonly #entryEnds = new Map<TenantId, SubjectEnd>();
  readonly #digestEnds = new Map<TenantId, SubjectEnd>();
  /** Per subject, the first number the stream holds (only with a legacy trail, which holds what is below). */
  readonly #firsts = new Map<string, number>();

  private constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly legacy: TrailLog | undefined,
  ) {}

  /**
   * Creates the stream when there is none. One that exists is never changed from here (the audit
   * service's NATS user may not update it): it is checked, and one that could lose entries (an age,
   * count or size limit, deletes or purges allowed) stops the service from starting, naming why.
   */
  static async open(nc: NatsConnection, options: StreamTrailLogOptions): Promise<StreamTrailLog> {
    const jsm = await jetstreamManager(nc);
    const log = new StreamTrailLog(jsm, jetstream(nc), options.legacy);
    const unsafe = await log.wouldLoseEntries().catch((error: unknown) => {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    });
    if (unsafe) throw new Error(unsafe);
    if (unsafe === undefined) await declareStreams(nc, [AUDIT_TRAIL_STREAM], { replicas: options.replicas });
    return log;
  }

  /**
   * Why the stream would not keep every entry, if it would not (someone with the stream rights gave
   * it a limit since the service started: the service checks again at every digest round); `''`
   * when it would. Throws when the stream is not there.
   */
  async wouldLoseEntries(): Promise<string> {
    return unsafeFor((await this.jsm.streams.info(AUDIT_TRAIL_STREAM.name)).config);
  }

  async createEntries(tenant: TenantId, entries: readonly TrailEntry[], sizes?: readonly number[]): Promise<void> {
    const fragments = fragmentsOf(entries, sizes);
    const first = fragments[0]?.[0]?.sequence;
    if (first === undefined) return;
    const bodies = await Promise.all(fragments.map(deflateEntries));
    const subject = trailEntriesSubject(tenant);
    const end = await this.#endBefore(this.#entryEnds, tenant, subject, first, async () => {
      const held = await this.entries(tenant, Math.max(1, first - 1), first);
      return first === 1 ? held[0] === undefined : held[0] !== undefined && held[1] === undefined;
    });
    if (!end) throw new MandateError('conflict', 'a sequence of the chain is taken');
    let seq = end.seq;
    for (const [i, fragment] of fragments.entries()) {
      const headers = natsHeaders();
      headers.set(AUDIT_TRAIL_HEADERS.first, String(fragment[0]!.sequence));
      headers.set(AUDIT_TRAIL_HEADERS.count, String(fragment.length));
      seq = await this.#append(this.#entryEnds, tenant, subject, bodies[i]!, headers, seq, 'a sequence of the chain is taken');
      this.#entryEnds.set(tenant, { seq, last: fragment.at(-1)!.sequence });
    }
  }

  entries(tenant: TenantId, from: number, to: number): Promise<(TrailEntry | undefined)[]> {
    const legacy = this.legacy;
    return this.#read(trailEntriesSubject(tenant), from, to, (fragment) => inflateEntries(fragment.message.data), legacy && ((low, high) => legacy.entries(tenant, low, high)));
  }

  async fragmentHolding(tenant: TenantId, sequence: number): Promise<StoredFragment | undefined> {
    const placed = await this.#range(trailEntriesSubject(tenant), sequence, sequence);
    for (const fragment of placed) {
      const entries = await inflateEntries(fragment.message.data);
      if (fragment.first <= sequence && sequence < fragment.first + entries.length) return { id: String(fragment.seq), revision: fragment.seq, first: fragment.first, entries };
    }
    if (placed.length === 0 && this.legacy) return this.legacy.fragmentHolding(tenant, sequence);
    return undefined;
  }

  digests(tenant: TenantId, from: number, to: number): Promise<(TrailDigest | undefined)[]> {
    const legacy = this.legacy;
    return this.#read(trailDigestsSubject(tenant), from, to, async (digest) => [digestOf(digest.message)], legacy && ((low, high) => legacy.digests(tenant, low, high)));
  }

  async createDigest(tenant: TenantId, digest: TrailDigest): Promise<boolean> {
    const subject = trailDigestsSubject(tenant);
    const end = await this.#endBefore(this.#digestEnds, tenant, subject, digest.number, async () => (await this.digests(tenant, digest.number, digest.number))[0] === undefined);
    if (!end) return false;
    const headers = natsHeaders();
    headers.set(AUDIT_TRAIL_HEADERS.digest, String(digest.number));
    try {
      const seq = await this.#append(this.#digestEnds, tenant, subject, JSON.stringify(digest), headers, end.seq, 'a digest with this number exists');
      this.#digestEnds.set(tenant, { seq, last: digest.number });
      return true;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return false; // a replica signed this number first
      throw error;
    }
  }

  /**
   * After which message of the subject `next` is appended: the one remembered, when it ends right
   * before `next`; otherwise the subject's last message as read now, provided the trail as read
   * then lets `next` follow (`follows`; `undefined` when it does not). The last message is read
   * first: an append after it that lands is one after what was read.
   */
  async #endBefore(ends: Map<TenantId, SubjectEnd>, tenant: TenantId, subject: string, next: number, follows: () => Promise<boolean>): Promise<SubjectEnd | undefined> {
    const known = ends.get(tenant);
    if (known && known.last === next - 1) return known;
    const newest = await this.#newest(subject);
    if (!(await follows())) {
      ends.delete(tenant);
      return undefined;
    }
    const end = { seq: newest?.seq ?? 0, last: next - 1 };
    ends.set(tenant, end);
    return end;
  }

  /** Publishes after the subject's message `expected` (0: the subject's first); `conflict` when the subject has moved on. */
  async #append(ends: Map<TenantId, SubjectEnd>, tenant: TenantId, subject: string, body: Uint8Array | string, headers: ReturnType<typeof natsHeaders>, expected: number, taken: string): Promise<number> {
    try {
      return (await this.js.publish(subject, body, { headers, expect: { lastSubjectSequence: expected } })).seq;
    } catch (error) {
      ends.delete(tenant);
      if (isWrongLastSequence(error)) throw new MandateError('conflict', taken);
      throw new MandateError('unavailable', 'the audit trail stream did not take the append', { cause: error });
    }
  }

  /**
   * Numbers `from`..`to` of a subject, each at its place (a message's items from its first number
   * on): below the first number the stream holds, from the legacy trail (`older`); a long range in
   * stretches, each found on its own and read forward, several at once (one message after another
   * would be a round trip each).
   */
  async #read<T>(subject: string, from: number, to: number, itemsOf: (message: Placed) => Promise<(T | undefined)[]>, older: ((from: number, to: number) => Promise<(T | undefined)[]>) | undefined): Promise<(T | undefined)[]> {
    const result = new Array<T | undefined>(Math.max(0, to - from + 1)).fill(undefined);
    if (from > to) return result;
    if (older) {
      const streamFirst = await this.#streamFirst(subject);
      if (streamFirst === undefined || from < streamFirst) (await older(from, Math.min(to, (streamFirst ?? Infinity) - 1))).forEach((item, i) => (result[i] = item));
    }
    const stretches: [number, number][] = [];
    for (let low = from; low <= to; low += STRETCH) stretches.push([low, Math.min(to, low + STRETCH - 1)]);
    for (let i = 0; i < stretches.length; i += STRETCHES_IN_PARALLEL) {
      await Promise.all(
        stretches.slice(i, i + STRETCHES_IN_PARALLEL).map(async ([low, high]) => {
          for (const message of await this.#range(subject, low, high)) {
            (await itemsOf(message)).forEach((item, j) => {
              const position = message.first + j;
              if (position >= low && position <= high) result[position - from] = item;
            });
          }
        }),
      );
    }
    return result;
  }

  /** The first number the stream holds on the subject (with a legacy trail, which holds what is below it). */
  async #streamFirst(subject: string): Promise<number | undefined> {
    const known = this.#firsts.get(subject);
    if (known !== undefined) return known;
    const first = (await this.#next(subject, 1))?.first;
    if (first === undefined || Number.isNaN(first)) return undefined;
    // Once the stream holds a subject's first message, that is where the legacy part ends, for good.
    this.#firsts.set(subject, first);
    return first;
  }

  /**
   * The messages that hold `from`..`to`, in stream order: from the last one starting at or before
   * `from` (or the subject's first, when all start after it), forward until one starts after `to`.
   */
  async #range(subject: string, from: number, to: number): Promise<Placed[]> {
    const newest = await this.#newest(subject);
    if (!newest) return [];
    let start: Placed | undefined = newest.first <= from ? newest : undefined;
    if (!start) {
      const oldest = await this.#next(subject, 1);
      if (!oldest) return [];
      start = oldest.first >= from || Number.isNaN(oldest.first) ? oldest : await this.#lastStartingBy(subject, from, oldest, newest);
    }
    const found: Placed[] = [];
    let expected: number | undefined;
    for (let at: Placed | undefined = start; at; at = await this.#next(subject, at.seq + 1)) {
      // A message whose headers do not place it holds nothing that can be found: its entries read as missing.
      if (Number.isNaN(at.first)) continue;
      if (at.first > to) {
        // The chain's next fragment, beyond the range: done. Anything else (a fragment after a gap,
        // or a message someone else put here) may have the chain's next fragments behind it.
        if (expected === undefined || at.first === expected) break;
        at = await this.#inLineWithin(subject, at, expected, to);
        if (!at) break;
      }
      found.push(at);
      expected = at.first + at.count;
    }
    return found;
  }

  /** Among the few messages after `after`, the first that continues the chain (starts at `expected` .. `to`), if one does. */
  async #inLineWithin(subject: string, after: Placed, expected: number, to: number): Promise<Placed | undefined> {
    let at: Placed | undefined = after;
    for (let looked = 0; looked < LOOK_AHEAD && at; looked += 1) {
      at = await this.#next(subject, at.seq + 1);
      if (at && at.first >= expected && at.first <= to) return at;
    }
    return undefined;
  }

  /** Binary search over the stream's sequences between `low` (starts at or before `target`) and `high` (after it). */
  async #lastStartingBy(subject: string, target: number, low: Placed, high: Placed): Promise<Placed> {
    let best = low;
    let lo = low.seq + 1;
    let hi = high.seq - 1;
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const probe = await this.#next(subject, mid);
      if (!probe || probe.seq > hi) {
        hi = mid - 1;
      } else if (probe.first <= target) {
        best = probe;
        lo = probe.seq + 1;
      } else {
        hi = mid - 1;
      }
    }
    return best;
  }

  #newest(subject: string): Promise<Placed | undefined> {
    return this.#get({ last_by_subj: subject });
  }

  /** The subject's first message at or after stream sequence `seq`. */
  #next(subject: string, seq: number): Promise<Placed | undefined> {
    // STREAM.MSG.GET takes `next_by_subj` (nats-server 2.9 and later); nats.js types it for the direct get only.
    return this.#get({ seq, next_by_subj: subject } as unknown as { seq: number });
  }

  async #get(request: { seq: number } | { last_by_subj: string }): Promise<Placed | undefined> {
    let message: StoredMsg | null;
    try {
      message = await this.jsm.streams.getMessage(AUDIT_TRAIL_STREAM.name, request);
    } catch (error) {
      throw new MandateError('unavailable', 'the audit trail stream did not answer', { cause: error });
    }
    if (!message) return undefined;
    const digest = message.header?.get(AUDIT_TRAIL_HEADERS.digest);
    const first = whole(digest || message.header?.get(AUDIT_TRAIL_HEADERS.first));
    const count = digest ? 1 : whole(message.header?.get(AUDIT_TRAIL_HEADERS.count));
    return { seq: message.seq, first, count: Number.isNaN(count) ? 0 : count, message };
  }
}

/** Why a stream with this configuration would not keep every entry, or `''`. */
function unsafeFor(config: StreamConfig): string {
  const unsafe = [
    config.deny_delete ? undefined : 'deletes are allowed (deny_delete is off)',
    config.deny_purge ? undefined : 'purges are allowed (deny_purge is off)',
    config.max_age > 0 ? `messages expire (max_age ${config.max_age} ns)` : undefined,
    config.max_msgs > 0 ? `at most ${config.max_msgs} messages are kept` : undefined,
    config.max_bytes > 0 ? `at most ${config.max_bytes} bytes are kept` : undefined,
    config.max_msgs_per_subject > 0 ? `at most ${config.max_msgs_per_subject} messages a subject are kept` : undefined,
    config.retention !== RetentionPolicy.Limits ? `its retention is ${config.retention}` : undefined,
    config.storage !== StorageType.File ? `it is kept in ${config.storage} (lost when nats-server stops)` : undefined,
    config.sealed ? 'it is sealed' : undefined,
  ].filter((why) => why !== undefined);
  return unsafe.length > 0 ? `the audit trail stream ${AUDIT_TRAIL_STREAM.name} would not keep every entry: ${unsafe.join('; ')}. Restore it (as an operator)` : '';
}

/** A positive whole number from a header, or NaN. */
function whole(value: string | undefined): number {
  const n = Number(value);
  return value && Number.isSafeInteger(n) && n >= 1 ? n : Number.NaN;
}

/** A digest as stored; one that does not parse reads as missing, which `verify` reports. */
function digestOf(message: StoredMsg): TrailDigest | undefined {
  try {
    return message.json<TrailDigest>();
  } catch {
    return undefined;
  }
}
