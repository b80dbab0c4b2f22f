/** A run of consecutive entries the index learnt at once (a batch, or a stretch read from the chain). */
interface Run {
  first: number;
  ids: string[];
  /** Epoch ms after which its records can no longer come again. */
  until: number;
}

/**
 * Which sequence a recently chained record has, by record id: the deduplication index of one
 * tenant's chain, in the memory of the writer that holds the chain's lease.
 *
 * A record can come again only for a while (a redelivery within a few ack waits, a retried publish
 * within the intake's duplicate window), so each run of entries is remembered for `windowMs` from
 * when it was learnt (or last renewed) and then forgotten: memory holds about one window's
 * records, as the per-record claims in the store did before.
 *
 * Runs are kept in chain order, and their `until` never decreases along it (a renewal moves the
 * newest runs only, to the latest time), so forgetting is always from the oldest; the newest can
 * be unlearnt (a prepared batch that will never be committed).
 */
export class RecentRecords {
  readonly #sequenceOf = new Map<string, number>();
  readonly #runs: Run[] = [];
  /** Index of the oldest run still held (runs before it are forgotten; compacted now and then). */
  #oldest = 0;

  /** `windowMs`: how long a learnt record is remembered. */
  constructor(private readonly windowMs: number) {}

  get size(): number {
    return this.#sequenceOf.size;
  }

  /** The first sequence held, or 0 when nothing is. */
  get first(): number {
    return this.#runs.length > this.#oldest ? this.#runs[this.#oldest]!.first : 0;
  }

  /** The last sequence held, or 0 when nothing is. */
  get last(): number {
    const run = this.#runs.at(-1);
    return run && this.#runs.length > this.#oldest ? run.first + run.ids.length - 1 : 0;
  }

  sequenceOf(recordId: string): number | undefined {
    return this.#sequenceOf.get(recordId);
  }

  /** Remembers consecutive entries from `first` on, after every one held, learnt at `nowMs`. */
  learn(first: number, ids: readonly string[], nowMs: number): void {
    if (ids.length === 0) return;
    const last = this.last;
    if (last > 0 && first <= last) throw new RangeError(`entries from ${first} learnt after ${last}`);
    this.#runs.push({ first, ids: [...ids], until: nowMs + this.windowMs });
    ids.forEach((id, i) => this.#sequenceOf.set(id, first + i));
  }

  /** Remembers the runs that hold `from` or anything after it for a whole window from `nowMs`. */
  renew(from: number, nowMs: number): void {
    const until = nowMs + this.windowMs;
    for (let i = this.#runs.length - 1; i >= this.#oldest; i -= 1) {
      const run = this.#runs[i]!;
      if (run.first + run.ids.length - 1 < from) return;
      run.until = Math.max(run.until, until);
    }
  }

  /** Forgets the runs whose time is up, none of them past `through` (what is not committed yet stays). */
  expire(nowMs: number, through: number = Number.MAX_SAFE_INTEGER): void {
    while (this.#oldest < this.#runs.length) {
      const run = this.#runs[this.#oldest]!;
      if (run.until >= nowMs || run.first + run.ids.length - 1 > through) break;
      this.#forget(run, 0);
      this.#runs[this.#oldest] = undefined as unknown as Run;
      this.#oldest += 1;
    }
    if (this.#oldest === this.#runs.length) {
      this.#runs.length = 0;
      this.#oldest = 0;
    } else if (this.#oldest > 1024 && this.#oldest * 2 > this.#runs.length) {
      this.#runs.splice(0, this.#oldest);
      this.#oldest = 0;
    }
  }

  /** Forgets every entry after `sequence` (a batch prepared and never committed). */
  unlearnAfter(sequence: number): void {
    while (this.#runs.length > this.#oldest) {
      const run = this.#runs.at(-1)!;
      if (run.first + run.ids.length - 1 <= sequence) return;
      const keep = Math.max(0, sequence - run.first + 1);
      this.#forget(run, keep);
      if (keep > 0) {
        run.ids.length = keep;
        return;
      }
      this.#runs.pop();
    }
  }

  clear(): void {
    this.#sequenceOf.clear();
    this.#runs.length = 0;
    this.#oldest = 0;
  }

  /** Drops a run's ids from `from` on, unless a later entry of the same record took the id over. */
  #forget(run: Run, from: number): void {
    for (let i = from; i < run.ids.length; i += 1) {
      const id = run.ids[i]!;
      if (this.#sequenceOf.get(id) === run.first + i) this.#sequenceOf.delete(id);
    }
  }
}
