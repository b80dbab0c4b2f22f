import type { DocumentCollection } from './port.js';

/** A collection whose records carry TTLs, by the name the sweeper reports it under. */
export interface SweptCollection {
  name: string;
  collection: Pick<DocumentCollection<unknown>, 'sweepExpired'>;
}

/** Where the sweeper says what it removed and what failed (a pino logger fits). */
export interface SweepLog {
  info(fields: { collection: string; removed: number }, message: string): void;
  warn(fields: { collection: string; err: unknown }, message: string): void;
}

export interface ExpirySweeperOptions {
  /** Time between sweeps; 0 never sweeps by itself (`sweep()` still does). */
  intervalMs: number;
  log?: SweepLog;
}

/**
 * Removes expired records for good, every so often. A record past its TTL already reads as
 * absent, but it stays stored until swept: without this, every consent session, lease and cached
 * token a service ever wrote would stay in the store for ever. Sweeps never overlap; replicas may
 * sweep at the same time (a record removed by one is skipped by the other).
 */
export class ExpirySweeper {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<Record<string, number>> | undefined;

  constructor(
    private readonly collections: readonly SweptCollection[],
    private readonly options: ExpirySweeperOptions,
  ) {}

  start(): this {
    if (this.options.intervalMs > 0 && !this.#timer) {
      this.#timer = setInterval(() => void this.sweep(), this.options.intervalMs);
      this.#timer.unref();
    }
    return this;
  }

  /** Sweeps every collection once (or joins the sweep under way); resolves to what each removed. */
  sweep(): Promise<Record<string, number>> {
    this.#running ??= this.#sweepAll().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Stops the timer and waits for a sweep under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async #sweepAll(): Promise<Record<string, number>> {
    const removed: Record<string, number> = {};
    for (const { name, collection } of this.collections) {
      try {
        removed[name] = await collection.sweepExpired();
        if (removed[name] > 0) this.options.log?.info({ collection: name, removed: removed[name] }, 'removed expired records');
      } catch (err) {
        // The next interval tries again.
        this.options.log?.warn({ collection: name, err }, 'could not remove expired records; will retry');
      }
    }
    return removed;
  }
}
