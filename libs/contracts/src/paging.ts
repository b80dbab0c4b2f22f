import { z } from 'zod';
import { tenantIdSchema } from './tenant.js';

/** The request fields of one page of a list: how many, and where the previous page ended. */
export const pageRequest = { limit: z.number().int().min(1).max(1000).default(100), cursor: z.string().max(1024).optional() };

/** The request of a list of one tenant's records. */
export const tenantPageRequest = z.strictObject({ tenant: tenantIdSchema, ...pageRequest });

/** One page of a list: its items, and the cursor of the next page while there is one. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().optional() });
}
