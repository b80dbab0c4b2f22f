import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { onEvent, type BusClient, type EventLog } from '@mandate/bus';
import {
  MandateError,
  workloadChangedEvent,
  workloadGetEndpoint,
  type TenantId,
  type Workload,
} from '@mandate/contracts';
import type { WorkloadSource } from '../domain/token-service.js';

/**
 * Workloads as the directory service knows them, asked over NATS and kept for a short while.
 * A `workload-changed` event evicts the entry at once, so a revoked key or a tightened authorizer
 * config takes effect without waiting for the cache to expire.
 */
export class DirectoryWorkloads implements WorkloadSource {
  readonly #cache = new Map<string, { workload: Promise<Workload | undefined>; at: number }>();
  readonly #subscription: Subscription;

  constructor(
    private readonly bus: BusClient,
    nc: NatsConnection,
    private readonly ttlMs: number,
    log: EventLog,
    private readonly now: () => number = Date.now,
  ) {
    this.#subscription = onEvent(nc, workloadChangedEvent, 'all-tenants', ({ tenant, data }) => void this.#cache.delete(keyOf(tenant, data.name)), log);
  }

  get(tenant: TenantId, name: string): Promise<Workload | undefined> {
    const key = keyOf(tenant, name);
    const cached = this.#cache.get(key);
    if (cached && this.now() - cached.at < this.ttlMs) return cached.workload;
    const workload = this.bus.request(workloadGetEndpoint, { tenant, name }).catch((error: unknown) => {
      if (error instanceof MandateError && error.code === 'not_found') return undefined;
      this.#cache.delete(key);
      throw error;
    });
    if (this.ttlMs > 0) this.#cache.set(key, { workload, at: this.now() });
    return workload;
  }

  close(): void {
    this.#subscription.unsubscribe();
  }
}

function keyOf(tenant: string, name: string): string {
  return `${tenant}\n${name}`;
}
