import { MandateError, type TenantId } from '@mandate/contracts';
import type { CreateOutcome, DocumentCollection, NewDocument } from './port.js';

/** `create`, answered as `createMany` answers each record: `conflict` when a live record has the id. */
export async function createUnlessTaken<T>(collection: DocumentCollection<T>, tenant: TenantId, { id, value, options }: NewDocument<T>): Promise<CreateOutcome> {
  try {
    await collection.create(tenant, id, value, options);
    return 'created';
  } catch (error) {
    if (error instanceof MandateError && error.code === 'conflict') return 'conflict';
    throw error;
  }
}
