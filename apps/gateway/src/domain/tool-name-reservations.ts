import { MandateError, type DiscoveredTool, type TargetSpec, type TenantId } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { GatewayRecords, ToolNameReservation } from '../store/repositories.js';

/**
 * A reservation younger than this holds even if its target does not show the name yet: it is
 * made before the target is written, and an add or a sync discovers the tools first (up to a
 * target's timeout, 30 s at most) only then to reserve and write.
 */
export const RESERVATION_GRACE_MS = 60_000;

/** Who holds a name that was reserved and released again while this change looked: another change at the same moment. */
const SOMEONE = 'being added at the same moment';

/** The names a target shows that must be unique at its gateway: its tools' own names, when it uses them as given. */
export function reservedNamesOf(target: Pick<TargetSpec, 'toolNames'>, tools: readonly Pick<DiscoveredTool, 'name'>[]): string[] {
  return target.toolNames === 'as-given' ? [...new Set(tools.map((tool) => tool.name))] : [];
}

/**
 * The as-given tool names of a gateway, each held by one target: a name is reserved (a document
 * created, which only one of two changes at once can do) before the target that shows it is
 * written, and released once it no longer does. The check that reads the other targets
 * (tool-naming.ts) says why a name is taken; this makes it hold when two changes race, on one
 * replica or on two.
 *
 * A reservation left behind (a crash between reserving and writing, a gateway deleted with its
 * targets) is stale once it is past its grace and its target no longer shows the name: it is then
 * taken over, by compare-and-swap.
 */
export class ToolNameReservations {
  constructor(
    private readonly records: GatewayRecords,
    private readonly now: () => number,
  ) {}

  /** Reserves `names` for `target`; `conflict`, reserving nothing new, when another target holds one. */
  async reserve(tenant: TenantId, gateway: string, target: string, names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const reservedAt = new Date(this.now()).toISOString();
    const outcomes = await this.records.createReservations(tenant, gateway, names.map((name) => ({ name, target, reservedAt })));
    const made = names.filter((_, i) => outcomes[i] === 'created');
    const held: { name: string; owner: string }[] = [];
    for (const name of names.filter((_, i) => outcomes[i] === 'conflict')) {
      const owner = await this.#ownerOtherThan(tenant, gateway, name, target, reservedAt);
      if (owner) held.push({ name, owner });
    }
    if (held.length === 0) return;
    await this.release(tenant, gateway, target, made);
    const shown = held.slice(0, 20);
    const more = held.length > shown.length ? `; and ${held.length - shown.length} more` : '';
    throw new MandateError('conflict', `target ${target}: ${held.length === 1 ? 'one of its tools cannot be named' : `${held.length} of its tools cannot be named`} at the gateway: ${shown.map(({ name, owner }) => `${name} (target ${owner} already has a tool of this name at the gateway)`).join('; ')}${more}`, {
      issues: shown.map(({ name, owner }) => ({ path: 'target.tools', message: `${name}: target ${owner} already has a tool of this name at the gateway` })),
    });
  }

  /** Gives up those of `names` that `target` holds (one another target took over stays its). */
  async release(tenant: TenantId, gateway: string, target: string, names: readonly string[]): Promise<void> {
    for (const name of names) {
      const held = await this.records.reservation(tenant, gateway, name);
      if (held?.value.target !== target) continue;
      await this.records.deleteReservation(tenant, gateway, name, held.revision).catch((error: unknown) => {
        // Changed or gone meanwhile: no longer ours to release.
        if (!(error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found'))) throw error;
      });
    }
  }

  /** Who holds `name` if not `target`: undefined when `target` does, or once a stale holder's reservation is taken over. */
  async #ownerOtherThan(tenant: TenantId, gateway: string, name: string, target: string, reservedAt: string): Promise<string | undefined> {
    const held = await this.records.reservation(tenant, gateway, name);
    if (!held) return this.#retake(tenant, gateway, name, target, reservedAt);
    if (held.value.target === target) return undefined;
    if (!(await this.#stale(tenant, gateway, held))) return held.value.target;
    try {
      await this.records.replaceReservation(tenant, gateway, { name, target, reservedAt }, held.revision);
      return undefined;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return (await this.records.reservation(tenant, gateway, name))?.value.target ?? SOMEONE;
      throw error;
    }
  }

  /** Deleted between the create and the read: created again, or whoever did first. */
  async #retake(tenant: TenantId, gateway: string, name: string, target: string, reservedAt: string): Promise<string | undefined> {
    const [outcome] = await this.records.createReservations(tenant, gateway, [{ name, target, reservedAt }]);
    if (outcome === 'created') return undefined;
    const owner = (await this.records.reservation(tenant, gateway, name))?.value.target;
    return owner === target ? undefined : (owner ?? SOMEONE);
  }

  async #stale(tenant: TenantId, gateway: string, held: StoredDocument<ToolNameReservation>): Promise<boolean> {
    if (this.now() - Date.parse(held.value.reservedAt) < RESERVATION_GRACE_MS) return false;
    const owner = (await this.records.target(tenant, gateway, held.value.target))?.value;
    return !owner || !reservedNamesOf(owner, owner.tools).includes(held.value.name);
  }
}
