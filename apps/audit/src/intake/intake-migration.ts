import { JetStreamApiError, RetentionPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { AUDIT_CONSUMER, AUDIT_STREAM } from '@mandate/contracts';

/** Where the legacy intake's subjects go when it is retired: nothing publishes there. */
export const RETIRED_INTAKE_SUBJECT = 'mandate.retired.audit-intake';

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

/**
 *   absent   no intake stream (the service's start declares it);
 *   current  the work-queue intake;
 *   legacy   the intake as deployed before it was bounded: limits retention, kept for ever;
 *   retired  a legacy intake whose subjects were moved away, waiting to be drained and removed.
 */
export type IntakeState = 'absent' | 'current' | 'legacy' | 'retired';

export async function intakeState(jsm: JetStreamManager): Promise<IntakeState> {
  try {
    const { config } = await jsm.streams.info(AUDIT_STREAM.name);
    if (config.retention === RetentionPolicy.Workqueue) return 'current';
    return config.subjects?.includes(RETIRED_INTAKE_SUBJECT) ? 'retired' : 'legacy';
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return 'absent';
    throw error;
  }
}

/** Records of the intake not yet acknowledged by the audit consumer: waiting plus in flight. */
export async function intakeLag(jsm: JetStreamManager): Promise<number> {
  try {
    const info = await jsm.consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER);
    return info.num_pending + info.num_ack_pending;
  } catch (error) {
    // A stream another replica already removed: nothing of it is left to drain.
    if (error instanceof JetStreamApiError && (error.code === STREAM_NOT_FOUND || error.code === CONSUMER_NOT_FOUND)) return 0;
    throw error;
  }
}

/**
 * A stream's retention cannot change in place, so a deployed system's intake (limits retention,
 * every record kept for ever) is replaced, by the audit service, the one part that knows when a
 * record no longer needs it:
 *
 *   legacy ──lag at most `cutAtLag`──▶ retired ──drained──▶ removed ──▶ work queue declared
 *
 *   - retire: the old stream's subjects move to RETIRED_INTAKE_SUBJECT, so no record can land in
 *     it any more (publishes fail, `unavailable`, until the new stream exists: as long as the last
 *     `cutAtLag` records take to be chained);
 *   - drained: the consumer has nothing pending and nothing unacknowledged, so every record the
 *     old stream ever held is in a chain;
 *   - removed: only then is the old stream deleted (its records were copies of the trail), and
 *     the caller declares the work-queue stream and consumes it.
 *
 * Every step is decided from the stream's state, so a crash resumes where it stopped and replicas
 * doing it at once agree (a stream another removed counts as drained and removed).
 */
export class IntakeMigration {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly options: { cutAtLag: number; pollMs: number; waiting?: (lag: number) => void },
  ) {}

  /**
   * Resolves once the legacy intake is retired and drained, the caller consuming it meanwhile;
   * then the caller stops consuming it and calls `remove()`.
   */
  async drain(stopped: () => boolean): Promise<void> {
    if ((await intakeState(this.jsm)) === 'legacy') {
      await this.#until(stopped, async () => {
        const lag = await intakeLag(this.jsm);
        if (lag > this.options.cutAtLag) this.options.waiting?.(lag);
        return lag <= this.options.cutAtLag;
      });
      await this.#retire();
    }
    if ((await intakeState(this.jsm)) !== 'retired') return;
    await this.#until(stopped, async () => (await intakeLag(this.jsm)) === 0);
  }

  /** Deletes the drained old stream (once: a stream already gone is fine). */
  async remove(): Promise<void> {
    const state = await intakeState(this.jsm);
    if (state === 'absent' || state === 'current') return;
    if (state === 'legacy' || (await intakeLag(this.jsm)) !== 0) throw new Error('the legacy audit intake is not drained; it is not removed');
    try {
      await this.jsm.streams.delete(AUDIT_STREAM.name);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND)) throw error;
    }
  }

  async #retire(): Promise<void> {
    const { config } = await this.jsm.streams.info(AUDIT_STREAM.name);
    await this.jsm.streams.update(AUDIT_STREAM.name, { ...config, subjects: [RETIRED_INTAKE_SUBJECT] });
  }

  async #until(stopped: () => boolean, done: () => Promise<boolean>): Promise<void> {
    for (;;) {
      if (stopped()) throw new Error('the audit service stopped before the intake was migrated');
      if (await done()) return;
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs));
    }
  }
}
