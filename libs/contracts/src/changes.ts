import { z } from 'zod';

/*
 * What the requests that change a record share: who asks, and the optimistic-concurrency guard
 * (the change applies only if nobody changed the record since it was read); and a delete's reply.
 */

/** Self-declared operator name recorded in the audit trail; authority comes from NATS permissions. */
export const actorSchema = z.string().min(1).max(255).optional();

/** The `revision` a read returned: with it, a change is a `conflict` once someone else changed the record. */
export const expectedRevisionSchema = z.number().int().min(0).optional();

export const deletedSchema = z.object({ deleted: z.literal(true) });
