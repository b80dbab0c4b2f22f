import type { TenantId, TrailEntry } from '@mandate/contracts';
import type { DocumentCollection } from '@mandate/store';
import type { TrailRepository } from '../store/trail-repository.js';

const fragmentId = (first: number) => `e.${String(first).padStart(12, '0')}`;

/**
 * Edits stored entries as someone with write access to the store could, whichever fragment holds
 * them: what the tampering tests do to a trail before asking `verify` to find it.
 */
export class StoredTrailEditor {
  constructor(
    private readonly repository: TrailRepository,
    private readonly raw: DocumentCollection<unknown>,
  ) {}

  async read(tenant: TenantId, sequence: number): Promise<TrailEntry> {
    const fragment = await this.#holding(tenant, sequence);
    return fragment.entries[sequence - fragment.first]!;
  }

  /** Puts `entry` where the entry at `sequence` was. */
  async replace(tenant: TenantId, sequence: number, entry: TrailEntry): Promise<void> {
    const fragment = await this.#holding(tenant, sequence);
    const entries = [...fragment.entries];
    entries[sequence - fragment.first] = entry;
    await this.raw.update(tenant, fragment.id, { entries }, fragment.revision);
  }

  /** Removes the entry at `sequence`, cutting its fragment in two around it. */
  async remove(tenant: TenantId, sequence: number): Promise<void> {
    const fragment = await this.#holding(tenant, sequence);
    const before = fragment.entries.slice(0, sequence - fragment.first);
    const after = fragment.entries.slice(sequence - fragment.first + 1);
    if (before.length > 0) await this.raw.update(tenant, fragment.id, { entries: before }, fragment.revision);
    else await this.raw.delete(tenant, fragment.id, { expectedRevision: fragment.revision });
    if (after.length > 0) await this.raw.create(tenant, fragmentId(sequence + 1), { entries: after });
  }

  async #holding(tenant: TenantId, sequence: number) {
    const fragment = await this.repository.fragmentHolding(tenant, sequence);
    if (!fragment) throw new Error(`no stored fragment holds entry ${sequence} of ${tenant}`);
    return fragment;
  }
}
