import { createHash } from 'node:crypto';
import { createContextKey, type Context } from '@opentelemetry/api';

/**
 * A request that came with an idempotency key writes the same ids on every retry: each audit
 * record and event it publishes takes its id from (key, subject, body) and the how-many-th write
 * of its kind it is, so a retry after a lost reply (the replica died after its record was
 * acknowledged) is stored once: JetStream drops the second publish inside its duplicate window,
 * and the audit trail chains an id once. The body is part of it, so a key reused for a
 * different request cannot suppress that request's records.
 */
interface RequestIdempotency {
  readonly root: Buffer;
  /** How many ids each kind of write has taken so far. */
  readonly taken: Map<string, number>;
  /** Set once the request is answered: work it started that outlives it (a timer) gets random ids. */
  finished: boolean;
}

const IDEMPOTENCY = createContextKey('mandate.request-idempotency');

export function withRequestIdempotency(ctx: Context, key: string, subject: string, body: Uint8Array): Context {
  const root = createHash('sha256').update(key).update('\0').update(subject).update('\0').update(body).digest();
  return ctx.setValue(IDEMPOTENCY, { root, taken: new Map(), finished: false } satisfies RequestIdempotency);
}

/** The request `ctx` belongs to is answered: what it left running writes ids of its own. */
export function finishRequestIdempotency(ctx: Context): void {
  const state = ctx.getValue(IDEMPOTENCY) as RequestIdempotency | undefined;
  if (state) state.finished = true;
}

/**
 * The id of the next write of this kind in the request `ctx` belongs to; undefined outside an
 * idempotent request. `kindOf` is asked only inside one (most writes are not: no key to derive from).
 */
export function idempotentId(ctx: Context, kindOf: () => string): string | undefined {
  const state = ctx.getValue(IDEMPOTENCY) as RequestIdempotency | undefined;
  if (!state || state.finished) return undefined;
  const kind = kindOf();
  const n = state.taken.get(kind) ?? 0;
  state.taken.set(kind, n + 1);
  const bytes = createHash('sha256').update(state.root).update(kind).update('\0').update(String(n)).digest().subarray(0, 16);
  // An RFC 9562 UUID of version 8 (custom), so it passes wherever a record id must be a UUID.
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
