import { createHash } from 'node:crypto';
import type { DiscoveredTool, Interceptor, TargetSpec, TenantId } from '@mandate/contracts';
import type { CreateOutcome, DocumentCollection, DocumentStore, StoredDocument } from '@mandate/store';
import type { OpenApiBinding } from '../domain/upstream.js';

export const GATEWAY_COLLECTIONS = ['gateways', 'gateway-targets', 'gateway-tool-names'] as const;

/** A gateway as stored; its workload key only sealed (bound to tenant and gateway). */
export interface GatewayDocument {
  name: string;
  description: string;
  workload: string;
  sealedKey: string;
  authorizationServers: string[];
  scopesSupported: string[];
  interceptors: Interceptor[];
  createdAt: string;
}

/** A target with the tools found at its last sync. */
export interface TargetDocument extends TargetSpec {
  gateway: string;
  tools: DiscoveredTool[];
  syncedAt: string;
  /** When the target was added (targets added before this was kept have none). */
  addedAt?: string;
  /** Set when the last sync could not reach the target: its tools are left out until a sync succeeds. */
  unreachableSince?: string;
  /** For an OpenAPI target: where each tool's operation is. */
  openapi?: OpenApiBinding;
}

/**
 * A tool name a target of a gateway holds there (an `as-given` one: prefixed names cannot clash).
 * Created before the target shows the name, so of two changes at once only one gets it.
 */
export interface ToolNameReservation {
  name: string;
  target: string;
  reservedAt: string;
}

/** A gateway's targets are stored under `<gateway>.`, so one prefix lists them and no two gateways share an id. */
const targetId = (gateway: string, target: string) => `${gateway}.${target}`;
/** A tool name may hold characters no document id may: its hash names its reservation. */
const reservationId = (gateway: string, name: string) => `${gateway}.${createHash('sha256').update(name).digest('base64url')}`;

/** The only code that touches the gateway's persistence. */
export class GatewayRecords {
  private constructor(
    private readonly gateways: DocumentCollection<GatewayDocument>,
    private readonly targets: DocumentCollection<TargetDocument>,
    private readonly names: DocumentCollection<ToolNameReservation>,
  ) {}

  static async open(store: DocumentStore): Promise<GatewayRecords> {
    const [gateways, targets, names] = GATEWAY_COLLECTIONS;
    return new GatewayRecords(await store.collection(gateways), await store.collection(targets), await store.collection(names));
  }

  /** Creates each reservation that does not exist: for each, `created` or `conflict`. */
  createReservations(tenant: TenantId, gateway: string, reservations: readonly ToolNameReservation[]): Promise<CreateOutcome[]> {
    return this.names.createMany(
      tenant,
      reservations.map((reservation) => ({ id: reservationId(gateway, reservation.name), value: reservation })),
    );
  }

  reservation(tenant: TenantId, gateway: string, name: string): Promise<StoredDocument<ToolNameReservation> | undefined> {
    return this.names.get(tenant, reservationId(gateway, name));
  }

  /** Compare-and-swap; `conflict` when it changed meanwhile. */
  replaceReservation(tenant: TenantId, gateway: string, reservation: ToolNameReservation, expectedRevision: number): Promise<StoredDocument<ToolNameReservation>> {
    return this.names.update(tenant, reservationId(gateway, reservation.name), reservation, expectedRevision);
  }

  /** Every reservation of a gateway's tool names (under `<gateway>.`, as its targets are). */
  reservationsOf(tenant: TenantId, gateway: string): Promise<StoredDocument<ToolNameReservation>[]> {
    return everyUnder(this.names, tenant, `${gateway}.`);
  }

  /** Deletes it if it is still at that revision. */
  deleteReservation(tenant: TenantId, gateway: string, name: string, expectedRevision: number): Promise<boolean> {
    return this.names.delete(tenant, reservationId(gateway, name), { expectedRevision });
  }

  gateway(tenant: TenantId, name: string): Promise<StoredDocument<GatewayDocument> | undefined> {
    return this.gateways.get(tenant, name);
  }

  createGateway(tenant: TenantId, document: GatewayDocument): Promise<StoredDocument<GatewayDocument>> {
    return this.gateways.create(tenant, document.name, document);
  }

  async listGateways(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: StoredDocument<GatewayDocument>[]; nextCursor?: string }> {
    const page = await this.gateways.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
    return { items: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  deleteGateway(tenant: TenantId, name: string): Promise<boolean> {
    return this.gateways.delete(tenant, name);
  }

  target(tenant: TenantId, gateway: string, target: string): Promise<StoredDocument<TargetDocument> | undefined> {
    return this.targets.get(tenant, targetId(gateway, target));
  }

  createTarget(tenant: TenantId, document: TargetDocument): Promise<StoredDocument<TargetDocument>> {
    return this.targets.create(tenant, targetId(document.gateway, document.name), document);
  }

  updateTarget(tenant: TenantId, document: TargetDocument, expectedRevision: number): Promise<StoredDocument<TargetDocument>> {
    return this.targets.update(tenant, targetId(document.gateway, document.name), document, expectedRevision);
  }

  deleteTarget(tenant: TenantId, gateway: string, target: string): Promise<boolean> {
    return this.targets.delete(tenant, targetId(gateway, target));
  }

  /** Every target of a gateway (a gateway has few), in name order. */
  targetsOf(tenant: TenantId, gateway: string): Promise<StoredDocument<TargetDocument>[]> {
    return everyUnder(this.targets, tenant, `${gateway}.`);
  }
}

/** Every document of a collection whose id starts with `prefix`, page after page. */
async function everyUnder<T>(collection: DocumentCollection<T>, tenant: TenantId, prefix: string): Promise<StoredDocument<T>[]> {
  const all: StoredDocument<T>[] = [];
  let cursor: string | undefined;
  do {
    const page = await collection.list(tenant, { prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}
