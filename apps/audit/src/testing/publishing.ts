import { randomUUID } from 'node:crypto';

/** Load that publishes audit records until stopped: how many are acknowledged so far, and all of them once stopped. */
export interface PublishingLoad {
  acked(): number;
  stop(): Promise<string[]>;
}

/**
 * `workers` publishers, each sending records to the tenants in turn and retrying each until it is
 * acknowledged (as services do: the same record, its id kept, while the intake is away for a moment),
 * pausing `pauseMs` between records. Resolves, once stopped, to the acknowledged record ids.
 */
export function publishing(publish: (tenant: string, id: string, worker: number) => Promise<unknown>, tenants: readonly string[], options: { workers?: number; pauseMs?: number } = {}): PublishingLoad {
  const acked: string[] = [];
  let stopped = false;
  const work = Array.from({ length: options.workers ?? 8 }, async (_, worker) => {
    for (let n = 0; !stopped; n += 1) {
      const id = randomUUID();
      const tenant = tenants[(worker + n) % tenants.length]!;
      for (;;) {
        try {
          await publish(tenant, id, worker);
          acked.push(id);
          break;
        } catch {
          if (stopped) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  });
  return {
    acked: () => acked.length,
    async stop() {
      stopped = true;
      await Promise.all(work);
      return acked;
    },
  };
}
