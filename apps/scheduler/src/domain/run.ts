import { MandateError, type RetryPolicy } from '@mandate/contracts';
import { Lease } from '@mandate/store';
import type { RunDocument, RunState } from '../store/scheduler-records.js';

/**
 * One fire of a job, with guarded transitions. Every transition returns the next document; the
 * caller writes it only if the revision it read is still current (compare-and-swap), so two
 * replicas can never both move the same run.
 *
 *                      (created by the replica whose `create` of the id won)
 *                                   │
 *        skipped ◀── missed fire,  ├──────────▶ pending
 *        (final)     policy skip   │              │ claim
 *                                   │              ▼
 *   retrying ──claim (backoff over)──────────▶ running ──claim (lease expired: its replica died)──▶ running
 *      ▲                                   │  │  │
 *      └── retryable error, retries left ──┘  │  └── success ─────────────────▶ succeeded (final)
 *                                             ├── retryable error, none left ─▶ dead-lettered (final)
 *                                             └── access_denied, unauthenticated, invalid_request,
 *                                                 not_found, consent_required ─▶ failed (final)
 *   pending | retrying | running ── job deleted ──▶ cancelled (final)
 *
 * Final runs that did not succeed (failed, dead-lettered) are published to the dead-letter subject.
 */
export class Run {
  static readonly FINAL: ReadonlySet<RunState> = new Set(['succeeded', 'failed', 'dead-lettered', 'skipped', 'cancelled']);
  /** Errors that another attempt cannot fix: the run fails at once with the code as its reason. */
  static readonly NOT_RETRYABLE: ReadonlySet<string> = new Set(['access_denied', 'unauthenticated', 'invalid_request', 'not_found', 'consent_required']);

  constructor(
    readonly id: string,
    readonly document: RunDocument,
    readonly revision: number,
  ) {}

  get state(): RunState {
    return this.document.state;
  }

  get final(): boolean {
    return Run.FINAL.has(this.state);
  }

  /** Whether a replica may start an attempt now. */
  claimable(now: number): boolean {
    switch (this.state) {
      case 'pending':
        return true;
      case 'retrying':
        return (this.document.nextAttemptAt ?? 0) <= now;
      case 'running':
        return this.#lease().state(now) !== 'held';
      default:
        return false;
    }
  }

  claim(owner: string, now: number, leaseMs: number): RunDocument {
    if (!this.claimable(now)) throw new MandateError('conflict', `run is ${this.state}, not claimable`);
    const { nextAttemptAt: _next, ...rest } = this.document;
    const lease = this.#lease().acquire(owner, now, leaseMs);
    return { ...rest, state: 'running', owner: lease.holder, leaseUntil: lease.until, attempts: this.document.attempts + 1 };
  }

  succeed(now: number, httpStatus?: number): RunDocument {
    this.#expectRunning('succeed');
    const { owner: _o, leaseUntil: _l, lastError: _e, ...rest } = this.document;
    return { ...rest, state: 'succeeded', finishedAt: now, ...(httpStatus !== undefined ? { httpStatus } : {}) };
  }

  /** An attempt failed: retry after backoff, or end as failed / dead-lettered. */
  fail(now: number, error: { code: string; message: string }, retry: RetryPolicy, httpStatus?: number): RunDocument {
    this.#expectRunning('fail');
    const { owner: _o, leaseUntil: _l, ...rest } = this.document;
    const base = { ...rest, lastError: error, ...(httpStatus !== undefined ? { httpStatus } : {}) };
    if (Run.NOT_RETRYABLE.has(error.code)) return { ...base, state: 'failed', finishedAt: now };
    const retriesDone = this.document.attempts - 1;
    if (retriesDone >= retry.limit) return { ...base, state: 'dead-lettered', finishedAt: now };
    const backoff = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** retriesDone);
    return { ...base, state: 'retrying', nextAttemptAt: now + backoff };
  }

  cancel(now: number): RunDocument {
    if (this.final) throw new MandateError('conflict', `run is already ${this.state}`);
    const { owner: _o, leaseUntil: _l, nextAttemptAt: _n, ...rest } = this.document;
    return { ...rest, state: 'cancelled', finishedAt: now };
  }

  /** The attempt's claim: who runs it, until when (a libs/store lease kept in the run's own fields). */
  #lease(): Lease {
    return new Lease(this.document.owner ? { holder: this.document.owner, until: this.document.leaseUntil ?? 0 } : undefined);
  }

  #expectRunning(what: string): void {
    if (this.state !== 'running') throw new TypeError(`cannot ${what} a run that is ${this.state}`);
  }
}
