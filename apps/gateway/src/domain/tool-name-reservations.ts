import { MandateError, type DiscoveredTool, type TargetSpec, type TenantId } from '@mandate/contracts';
import type { GatewayRecords } from '../store/repositories.js';

/**
 * A reservation younger than this holds even if its target does not show the name yet: it is
 * made (or renewed) just before the target is written, after the tools were discovered.
 */
export const RESERVATION_GRACE_MS = 60_000;

/** A reservation a change holds, at the revision it saw: released only if nobody renewed it since. */
export interface Holding {
  name: string;
  revision: number;
}

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
 * Every reservation a change makes or keeps is renewed (a compare-and-swap that moves its time
 * and revision), and a release deletes only at the revision its change saw: a reservation another
 * change of the same target renewed meanwhile stays. One left behind (a crash between reserving
 * and writing, a release that failed) is stale once it is past its grace and its target does not
 * show the name: it is then taken over. Releasing is best effort for that reason: it never fails
 * the change it follows.
 */
export class ToolNameReservations {
  constructor(
    private readonly records: GatewayRecords,
    private readonly now: () => number,
  ) {}

  /**
   * Reserves `names` for `target` (renewing those it holds); `conflict`, keeping nothing new,
   * when another target holds one. What it holds afterwards is for `release` if the change fails.
   */
  async reserve(tenant: TenantId, gateway: string, target: string, names: readonly string[]): Promise<Holding[]> {
    if (names.length === 0) return [];
    const reservedAt = new Date(this.now()).toISOString();
    const outcomes = await this.records.createReservations(tenant, gateway, names.map((name) => ({ name, target, reservedAt })));
    const holdings: Holding[] = [];
    const held: { name: string; owner: string }[] = [];
    for (const [i, name] of names.entries()) {
      const taken = outcomes[i] === 'created' ? await this.#created(tenant, gateway, name) : await this.#claim(tenant, gateway, name, target, reservedAt);
      if ('owner' in taken) held.push({ name, owner: taken.owner });
      else holdings.push(taken);
    }
    if (held.length === 0) return holdings;
    await this.release(tenant, gateway, holdings);
    const shown = held.slice(0, 20);
    const more = held.length > shown.length ? `; and ${held.length - shown.length} more` : '';
    throw new MandateError('conflict', `target ${target}: ${held.length === 1 ? 'one of its tools cannot be named' : `${held.length} of its tools cannot be named`} at the gateway: ${shown.map(({ name, owner }) => `${name} (target ${owner} already has a tool of this name at the gateway)`).join('; ')}${more}`, {
      issues: shown.map(({ name, owner }) => ({ path: 'target.tools', message: `${name}: target ${owner} already has a tool of this name at the gateway` })),
    });
  }

  /** What `target` holds of `names` now, at the revisions seen: read before a change that stops showing them. */
  async holdings(tenant: TenantId, gateway: string, target: string, names: readonly string[]): Promise<Holding[]> {
    const found: Holding[] = [];
    for (const name of names) {
      const held = await this.records.reservation(tenant, gateway, name);
      if (held?.value.target === target) found.push({ name, revision: held.revision });
    }
    return found;
  }

  /** Gives up these holdings, each only if nobody renewed or took it over since; never fails. */
  async release(tenant: TenantId, gateway: string, holdings: readonly Holding[]): Promise<void> {
    for (const { name, revision } of holdings) {
      // Changed, gone or unreachable: not ours to release any more, or stale soon and taken over then.
      await this.records.deleteReservation(tenant, gateway, name, revision).catch(() => undefined);
    }
  }

  /**
   * Releases whatever is still reserved at a gateway being deleted, once its targets are gone: what a
   * crash or a failed release left would otherwise stay for ever (no target of that gateway will
   * take it over). A listing that fails fails the delete, which can be made again (the gateway is
   * still there); each release is best effort, like `release`.
   */
  async releaseAllOf(tenant: TenantId, gateway: string): Promise<void> {
    const left = await this.records.reservationsOf(tenant, gateway);
    await this.release(tenant, gateway, left.map((reservation) => ({ name: reservation.value.name, revision: reservation.revision })));
  }

  async #created(tenant: TenantId, gateway: string, name: string): Promise<Holding | { owner: string }> {
    const held = await this.records.reservation(tenant, gateway, name);
    return held ? { name, revision: held.revision } : { owner: SOMEONE };
  }

  /** A name someone reserved already: renewed if `target` holds it, taken over if it is stale, else whose it is. */
  async #claim(tenant: TenantId, gateway: string, name: string, target: string, reservedAt: string): Promise<Holding | { owner: string }> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const held = await this.records.reservation(tenant, gateway, name);
      if (!held) {
        const [outcome] = await this.records.createReservations(tenant, gateway, [{ name, target, reservedAt }]);
        if (outcome === 'created') return this.#created(tenant, gateway, name);
        continue;
      }
      if (held.value.target !== target && !(await this.#stale(tenant, gateway, held.value.target, held.value.name, held.value.reservedAt))) return { owner: held.value.target };
      try {
        const renewed = await this.records.replaceReservation(tenant, gateway, { name, target, reservedAt }, held.revision);
        return { name, revision: renewed.revision };
      } catch (error) {
        if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
      }
    }
    const owner = (await this.records.reservation(tenant, gateway, name))?.value.target;
    return { owner: owner && owner !== target ? owner : SOMEONE };
  }

  async #stale(tenant: TenantId, gateway: string, owner: string, name: string, reservedAt: string): Promise<boolean> {
    if (this.now() - Date.parse(reservedAt) < RESERVATION_GRACE_MS) return false;
    const target = (await this.records.target(tenant, gateway, owner))?.value;
    return !target || !reservedNamesOf(target, target.tools).includes(name);
  }
}
