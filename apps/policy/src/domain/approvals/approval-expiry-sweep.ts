import type { Logger } from '@mandate/telemetry';
import type { ApprovalPorts, CurrentApprovals } from './current-approvals.js';

/** Entries looked at per sweep; more due wait for the next (a sweep runs every few seconds). */
const SWEEP_BATCH = 500;
/** An entry that could not be handled is looked at again this much later. */
const RETRY_AFTER_MS = 60_000;

/**
 * Moves approvals to `expired` when their time is up, whether or not anyone reads them again, so
 * every lapse is audited, announced (`approval-decided`, state `expired`: a chat bot can update
 * its message, `waitForApproval` wakes) and counted. Reading is what expires an approval
 * (CurrentApprovals), so this only reads the due ones: a request or an unused approval past its
 * time becomes `expired` once, whichever replica's sweep or reader wrote first; one decided or
 * used meanwhile stays as it is. Each due entry is dropped once its approval has been read and,
 * if it expired, its expiry announced.
 */
export class ApprovalExpirySweep {
  #running: Promise<number> | undefined;

  constructor(
    private readonly ports: ApprovalPorts,
    private readonly current: CurrentApprovals,
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

  /** One sweep (or the one under way); resolves to how many due entries it handled. */
  sweep(): Promise<number> {
    this.#running ??= this.#sweep().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** The sweep under way, if any (to wait for at shutdown). */
  idle(): Promise<number> | undefined {
    return this.#running?.catch(() => 0);
  }

  async #sweep(): Promise<number> {
    const due = await this.ports.records.dueExpiries(this.ports.now(), SWEEP_BATCH);
    let handled = 0;
    for (const entry of due) {
      try {
        const approval = await this.current.find(entry.tenant, entry.approval);
        // An expiry not announced yet (here or by a reader) keeps its entry until the journal has it.
        if (approval?.expiryUnannounced) await this.current.announceExpiry(approval);
        await this.ports.records.forgetExpiry(entry);
        handled += 1;
      } catch (err) {
        this.logger?.warn({ err, tenant: entry.tenant, approval: entry.approval }, `could not expire an approval; tried again in ${RETRY_AFTER_MS / 1000} s`);
        // Retried later rather than on every sweep; if even that write fails, the entry stays where it is.
        await this.ports.records.postponeExpiry(entry, this.ports.now() + RETRY_AFTER_MS, this.ports.now()).catch(() => undefined);
      }
    }
    return handled;
  }
}
