import type { Subscription } from '@nats-io/transport-node';
import { onEvent } from '@mandate/bus/client';
import { consentGrantedEvent, MandateError, type ConsentGrantedData } from '@mandate/contracts';
import type { MandateClient } from './client.js';

/** How long `withAccessToken` and `waitForConsent` wait for a person's consent by default: 5 minutes. */
export const DEFAULT_CONSENT_TIMEOUT_MS = 5 * 60_000;

/**
 * The slow backoff on which a waiting agent re-asks the vault, in case it missed the event:
 * 2 s, 4 s, 8 s, … at most 30 s apart. Never a tight poll.
 */
export const DEFAULT_RECHECK_BACKOFF: Readonly<ConsentRecheckBackoff> = Object.freeze({ initialMs: 2_000, maxMs: 30_000 });

/** The delays between re-checks: the first, doubled each time up to the cap. */
export interface ConsentRecheckBackoff {
  initialMs: number;
  maxMs: number;
}

/** Options of {@link waitForConsent}. */
export interface WaitForConsentOptions {
  /** The consent session, from `consent_required`'s `details.sessionId`. */
  sessionId: string;
  /** Give up after this long (default 5 minutes) with `consent_required`. */
  timeoutMs?: number;
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Resolves when the consent service announces that the person approved `sessionId`
 * (`mandate.evt.consent.granted.<tenant>` for this client's tenant and workload), with the event's data.
 * Rejects with `MandateError('consent_required')` (and `details.sessionId`) after the timeout.
 *
 * The subscription starts synchronously, so call it *before* showing the authorization URL and
 * await it after: `const granted = waitForConsent(client, { sessionId }); show(url); await granted;`.
 * The event is only a wake-up call: it holds no token, so ask the vault for the token afterwards
 * (`withAccessToken` does all of this, and also re-asks the vault on a slow backoff in case an
 * event is missed).
 */
export async function waitForConsent(client: MandateClient, options: WaitForConsentOptions): Promise<ConsentGrantedData> {
  const watch = ConsentWatch.open(client, options.sessionId);
  try {
    await watch.ready();
    return await watch.until({
      timeoutMs: options.timeoutMs ?? DEFAULT_CONSENT_TIMEOUT_MS,
      signal: options.signal,
      onEvent: async (event) => event,
    });
  } finally {
    watch.close();
  }
}

/** What {@link ConsentWatch.until} does on each wake-up; `undefined` means keep waiting. */
export interface ConsentWatchSteps<T> {
  timeoutMs: number;
  signal?: AbortSignal;
  backoff?: ConsentRecheckBackoff;
  /** A matching event arrived. */
  onEvent: (event: ConsentGrantedData) => Promise<T | undefined>;
  /** The backoff elapsed without an event: ask the source of truth again. */
  onRecheck?: () => Promise<T | undefined>;
  /** Extra `details` for the timeout error. */
  timeoutDetails?: Record<string, unknown>;
}

/**
 * A core NATS subscription to `consent.granted` events for one session of one tenant and
 * workload (JetStream-stored events reach core subscribers too). Malformed events and events
 * for anything else are ignored. Internal to the SDK; {@link waitForConsent} is the public face.
 */
export class ConsentWatch {
  readonly #client: MandateClient;
  readonly #sessionId: string;
  readonly #subscription: Subscription;
  readonly #queue: ConsentGrantedData[] = [];
  #wake: (() => void) | undefined;

  private constructor(client: MandateClient, sessionId: string) {
    this.#client = client;
    this.#sessionId = sessionId;
    // Malformed events, and events for anything else, are not ours: they are ignored.
    this.#subscription = onEvent(client.connection, consentGrantedEvent, { tenant: client.tenant }, ({ data }) => this.#receive(data), { warn: () => undefined });
  }

  /** Subscribes at once; {@link ready} confirms the server has the subscription. */
  static open(client: MandateClient, sessionId: string): ConsentWatch {
    return new ConsentWatch(client, sessionId);
  }

  /** Resolves once the server has processed the subscription, so no event published after it is missed. */
  async ready(): Promise<void> {
    await this.#client.connection.flush();
  }

  /**
   * Waits for events and, on the backoff, re-checks, until a step returns a value, a step
   * throws, the signal aborts or the time runs out (`consent_required`).
   */
  async until<T>(steps: ConsentWatchSteps<T>): Promise<T> {
    const backoff = steps.backoff ?? DEFAULT_RECHECK_BACKOFF;
    const deadline = Date.now() + steps.timeoutMs;
    let delay = backoff.initialMs;
    let nextRecheck = Date.now() + delay;
    for (;;) {
      steps.signal?.throwIfAborted();
      const now = Date.now();
      if (now >= deadline) break;
      const wakeAt = steps.onRecheck ? Math.min(deadline, nextRecheck) : deadline;
      const event = await this.#next(wakeAt - now, steps.signal);
      if (event) {
        const result = await steps.onEvent(event);
        if (result !== undefined) return result;
        continue;
      }
      if (steps.onRecheck && Date.now() >= nextRecheck && Date.now() < deadline) {
        const result = await steps.onRecheck();
        if (result !== undefined) return result;
        delay = Math.min(delay * 2, backoff.maxMs);
        nextRecheck = Date.now() + delay;
      }
    }
    throw new MandateError('consent_required', `consent was not given within ${Math.round(steps.timeoutMs / 1000)} s`, {
      details: { ...steps.timeoutDetails, sessionId: this.#sessionId, status: 'pending' },
    });
  }

  /** Stops listening. */
  close(): void {
    this.#subscription.unsubscribe();
    this.#wake?.();
  }

  #receive(event: ConsentGrantedData): void {
    if (event.sessionId !== this.#sessionId || event.workload !== this.#client.workload) return;
    this.#queue.push(event);
    this.#wake?.();
  }

  /** The next queued event, or `undefined` after `ms` without one. */
  async #next(ms: number, signal: AbortSignal | undefined): Promise<ConsentGrantedData | undefined> {
    if (this.#queue.length === 0) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', aborted);
          this.#wake = undefined;
          resolve();
        };
        const aborted = () => {
          done();
          reject(signal!.reason);
        };
        const timer = setTimeout(done, Math.max(0, ms));
        this.#wake = done;
        signal?.addEventListener('abort', aborted, { once: true });
      });
    }
    return this.#queue.shift();
  }
}
