import { describe, expect, it } from 'vitest';
import { ApprovalDecisions } from './approval-decisions.js';

describe('ApprovalDecisions: held calls woken by the decision event', () => {
  it('wakes every waiter of that approval, in its tenant only, once', async () => {
    const decisions = new ApprovalDecisions();
    const first = decisions.next('acme', 'apr_1');
    const second = decisions.next('acme', 'apr_1');
    const other = decisions.next('globex', 'apr_1');
    decisions.decided('globex', 'apr_2');
    decisions.decided('acme', 'apr_1');
    expect(await Promise.all([first.decided(60_000), second.decided(60_000)])).toEqual([true, true]);
    expect(await other.decided(0)).toBe(false);
    other.cancel();
  });

  it('a decision published after the waiter registered and before it awaited is not missed', async () => {
    const decisions = new ApprovalDecisions();
    const waiter = decisions.next('acme', 'apr_1');
    decisions.decided('acme', 'apr_1');
    expect(await waiter.decided(60_000)).toBe(true);
  });

  it('a cancelled waiter is not woken, and without a decision the wait ends at its bound', async () => {
    const decisions = new ApprovalDecisions();
    const cancelled = decisions.next('acme', 'apr_1');
    cancelled.cancel();
    decisions.decided('acme', 'apr_1');
    expect(await cancelled.decided(0)).toBe(false);
    expect(await decisions.next('acme', 'apr_3').decided(0)).toBe(false);
  });
});
