/**
 * Tells the appender when the intake will deliver nothing more until records are acknowledged, so
 * that batches waiting to fill (AUDIT_CHAIN_LINGER_MS) go at once instead of waiting out their
 * linger for records that cannot come.
 *
 * The consumer lets `limit` messages be delivered and unacknowledged at once, across every replica.
 * Two ways to know it is reached:
 *   - this replica alone holds half of it: said at once, on the delivery that gets there;
 *   - deliveries have paused for `QUIET_MS` while messages are in hand: then the consumer's own
 *     count of unacknowledged messages (every replica's) is asked, at most every `ASK_EVERY_MS`.
 *     A pause is what a low rate looks like too, where waiting is the point, so the count decides.
 */
export interface IntakeWindowOptions {
  /** Messages the consumer lets be unacknowledged at once (every replica together). */
  limit: number;
  /** The consumer's `num_ack_pending`, every replica's delivered and unacknowledged messages. */
  unacknowledged(): Promise<number>;
  /** Every waiting batch goes now. */
  flush(): void;
  /** Messages this replica has in hand. */
  inHand(): number;
}

const QUIET_MS = 20;
const ASK_EVERY_MS = 200;
/** Close enough to the limit to count as reached: deliveries trickle in as acknowledgements free a few. */
const FULL_SHARE = 0.9;

export class IntakeWindow {
  #lastDelivery = 0;
  #lastAsked = 0;
  #asking = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: IntakeWindowOptions) {}

  start(): void {
    this.#timer = setInterval(() => void this.#check(), QUIET_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** A message was delivered and taken in hand. */
  delivered(): void {
    this.#lastDelivery = performance.now();
    if (this.options.inHand() >= this.options.limit / 2) this.options.flush();
  }

  async #check(): Promise<void> {
    const now = performance.now();
    if (this.#asking || this.options.inHand() === 0 || now - this.#lastDelivery < QUIET_MS || now - this.#lastAsked < ASK_EVERY_MS) return;
    this.#asking = true;
    this.#lastAsked = now;
    try {
      if ((await this.options.unacknowledged()) >= FULL_SHARE * this.options.limit) this.options.flush();
    } catch {
      // Not known (the bus is away): the linger ends the wait.
    } finally {
      this.#asking = false;
    }
  }
}
