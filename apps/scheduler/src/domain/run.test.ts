import { describe, expect, it } from 'vitest';
import { MandateError } from '@mandate/contracts';
import type { RunDocument } from '../store/scheduler-records.js';
import { Run } from './run.js';

const NOW = Date.UTC(2026, 0, 1);
const LEASE = 60_000;
const RETRY = { limit: 2, backoffMs: 1_000, maxBackoffMs: 3_000 };
const pending: RunDocument = { job: 'report', jobUid: 'u1', idempotencyKey: 'u1.c1', trigger: 'cron', scheduledFor: NOW, state: 'pending', attempts: 0, createdAt: NOW };

function refusal(move: () => unknown): string {
  try {
    move();
  } catch (error) {
    return error instanceof MandateError ? error.code : (error as Error).name;
  }
  return 'allowed';
}

describe('Run (guarded transitions, frozen clock)', () => {
  const running = new Run('r', new Run('r', pending, 1).claim('replica-a', NOW, LEASE), 2);

  it('pending: claimable at once; a claim runs it under a lease, attempt 1', () => {
    expect(new Run('r', pending, 1).claimable(NOW)).toBe(true);
    expect(running.document).toMatchObject({ state: 'running', owner: 'replica-a', leaseUntil: NOW + LEASE, attempts: 1 });
  });

  it('running: nobody else claims it while the lease holds; once it lapses (its replica died) another takes it over', () => {
    expect(running.claimable(NOW + LEASE - 1)).toBe(false);
    expect(refusal(() => running.claim('replica-b', NOW + 1, LEASE))).toBe('conflict');
    expect(running.claimable(NOW + LEASE)).toBe(true);
    expect(running.claim('replica-b', NOW + LEASE, LEASE)).toMatchObject({ state: 'running', owner: 'replica-b', attempts: 2 });
  });

  it('succeeds, or fails: retried with backoff while retries are left, then dead-lettered', () => {
    expect(running.succeed(NOW + 5, 204)).toMatchObject({ state: 'succeeded', finishedAt: NOW + 5, httpStatus: 204 });
    expect(running.succeed(NOW).owner).toBeUndefined();
    const retrying = running.fail(NOW, { code: 'unavailable', message: 'down' }, RETRY);
    expect(retrying).toMatchObject({ state: 'retrying', nextAttemptAt: NOW + 1_000 });
    expect(new Run('r', retrying, 3).claimable(NOW + 999)).toBe(false);
    expect(new Run('r', retrying, 3).claimable(NOW + 1_000)).toBe(true);
    const third = new Run('r', { ...retrying, state: 'running', attempts: 3 }, 4);
    expect(third.fail(NOW, { code: 'unavailable', message: 'down' }, RETRY)).toMatchObject({ state: 'dead-lettered', finishedAt: NOW });
  });

  it('an error another attempt cannot fix fails the run at once', () => {
    for (const code of Run.NOT_RETRYABLE) expect(running.fail(NOW, { code, message: 'no' }, RETRY).state).toBe('failed');
  });

  it('cancels what is not final; final runs move no more', () => {
    expect(new Run('r', pending, 1).cancel(NOW)).toMatchObject({ state: 'cancelled', finishedAt: NOW });
    const done = new Run('r', running.succeed(NOW), 3);
    expect(done.final).toBe(true);
    expect(done.claimable(NOW + LEASE * 10)).toBe(false);
    expect(refusal(() => done.cancel(NOW))).toBe('conflict');
    expect(refusal(() => done.fail(NOW, { code: 'internal', message: 'x' }, RETRY))).toBe('TypeError');
  });
});
