/**
 * Calls waiting for a person, woken by the `approval-decided` event rather than by polling: the
 * event subscription tells this which approval was decided, and every waiter for it wakes to
 * look again. Register before looking (see `HeldCalls`), so a decision between the look and the
 * wait is not missed.
 */
export class ApprovalDecisions {
  readonly #waiters = new Map<string, Set<() => void>>();

  /** An approval was decided (or expired): wake whoever waits for it. */
  decided(tenant: string, id: string): void {
    const key = `${tenant}/${id}`;
    const waiters = this.#waiters.get(key);
    if (!waiters) return;
    this.#waiters.delete(key);
    for (const wake of waiters) wake();
  }

  /** Resolves on the next decision of this approval, or after `timeoutMs` (then `false`). */
  next(tenant: string, id: string): { decided: (timeoutMs: number) => Promise<boolean>; cancel: () => void } {
    const key = `${tenant}/${id}`;
    let wake!: () => void;
    let release!: () => void;
    const woken = new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      release = () => resolve(false);
    });
    const waiters = this.#waiters.get(key) ?? new Set();
    waiters.add(wake);
    this.#waiters.set(key, waiters);
    const cancel = () => {
      const current = this.#waiters.get(key);
      current?.delete(wake);
      if (current?.size === 0) this.#waiters.delete(key);
      // Settles a `decided` still running (a wait given up mid-way) as not woken, so its timer goes too.
      release();
    };
    return {
      decided: async (timeoutMs) => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs))));
        try {
          return await Promise.race([woken, timedOut]);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel,
    };
  }
}
