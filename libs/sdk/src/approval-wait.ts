import { BusClient, onEvent } from '@mandate/bus/client';
import { approvalDecidedEvent, approvalStatusEndpoint, MandateError, type ApprovalStatus } from '@mandate/contracts';
import type { MandateClient } from './client.js';
import { DEFAULT_RECHECK_BACKOFF, type ConsentRecheckBackoff } from './consent-wait.js';

/** How long `waitForApproval` waits for a person's decision by default: 15 minutes, the default approval TTL. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 15 * 60_000;

/** Options of {@link waitForApproval}. */
export interface WaitForApprovalOptions {
  /** The approval request, from a held call's `approval_required` (`_meta["io.mandate/approval"].id`). */
  id: string;
  /** Give up after this long (default 15 minutes) with `approval_required`. */
  timeoutMs?: number;
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The slow backoff of re-checks in case an event is missed (default 2 s doubling to 30 s). */
  backoff?: ConsentRecheckBackoff;
}

/** What a wait ends on: the approval decided (approved, denied), expired, or already used; its state and times only (`approval-status`). */
export type DecidedApproval = ApprovalStatus & { state: 'approved' | 'denied' | 'expired' | 'consumed' };

/**
 * Resolves with the approval once a person decided it (`approved` or `denied`), it expired, or
 * it was already used (`consumed`). Woken by `mandate.evt.policy.approval-decided.<tenant>` for
 * this id, each wake-up confirmed with `approval-status` (state and times, none of what the approval binds); it also asks once at the start (it may be
 * decided already), on a slow backoff in case an event is missed, and at the approval's expiry.
 * Never a tight poll. After the timeout it rejects with `MandateError('approval_required')`
 * (`details.id`, `details.state`). An approved call is then made again, with the same arguments.
 */
export async function waitForApproval(client: MandateClient, options: WaitForApprovalOptions): Promise<DecidedApproval> {
  const bus = new BusClient(client.connection, { defaultTimeoutMs: 10_000 });
  const timeoutMs = options.timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
  const backoff = options.backoff ?? DEFAULT_RECHECK_BACKOFF;
  const deadline = Date.now() + timeoutMs;
  let wake: (() => void) | undefined;
  // Set by the event, cleared before each look: an event during the look means look again.
  let woken: boolean;
  const subscription = onEvent(
    client.connection,
    approvalDecidedEvent,
    { tenant: client.tenant },
    ({ data }) => {
      if (data.id !== options.id) return;
      woken = true;
      wake?.();
    },
    { warn: () => undefined },
  );
  try {
    // Once the server has the subscription, no decision published after the first look is missed.
    await client.connection.flush();
    let delay = backoff.initialMs;
    for (;;) {
      options.signal?.throwIfAborted();
      woken = false;
      const approval = await bus.request(approvalStatusEndpoint, { tenant: client.tenant, id: options.id });
      if (approval.state !== 'requested') return approval as DecidedApproval;
      const now = Date.now();
      if (now >= deadline) break;
      // Wake for the event, the next re-check, or the approval's expiry (read then, it turns expired), whichever is first.
      const until = Math.min(deadline, now + delay, Date.parse(approval.expiresAt) + 1);
      if (!woken) await sleepUntil(until - now, options.signal, (resolve) => (wake = resolve));
      wake = undefined;
      if (!woken) delay = Math.min(delay * 2, backoff.maxMs);
    }
    throw new MandateError('approval_required', `approval ${options.id} was not decided within ${Math.round(timeoutMs / 1000)} s`, { details: { id: options.id, state: 'requested' } });
  } finally {
    subscription.unsubscribe();
  }
}

function sleepUntil(ms: number, signal: AbortSignal | undefined, onWake: (resolve: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      resolve();
    };
    const aborted = () => {
      done();
      reject(signal!.reason);
    };
    const timer = setTimeout(done, Math.max(0, ms));
    onWake(done);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
