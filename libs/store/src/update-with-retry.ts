import { MandateError, type TenantId } from '@mandate/contracts';
import type { DocumentCollection, StoredDocument, WriteOptions } from './port.js';

/** What `change` wants written: the next value (and its write options), or nothing. */
export type Change<T> = { value: T; options?: WriteOptions } | undefined;

/**
 * Read, change, write back only if nobody wrote in between (create when there was nothing);
 * on a lost race, read again and change again, at most `attempts` times, then `conflict`.
 * `change` must be a pure function of what it is given: it may run once per attempt. When it
 * returns nothing, nothing is written and the record as read is returned.
 */
export async function updateWithRetry<T>(
  collection: DocumentCollection<T>,
  tenant: TenantId,
  id: string,
  change: (current: StoredDocument<T> | undefined) => Change<T>,
  attempts = 5,
): Promise<StoredDocument<T> | undefined> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await collection.get(tenant, id);
    const next = change(current);
    if (!next) return current;
    try {
      return current
        ? await collection.update(tenant, id, next.value, current.revision, next.options)
        : await collection.create(tenant, id, next.value, next.options);
    } catch (error) {
      // not_found: it expired or was deleted between the read and the write; read again.
      if (!(error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found'))) throw error;
    }
  }
  throw new MandateError('conflict', 'the record kept changing; try again');
}
