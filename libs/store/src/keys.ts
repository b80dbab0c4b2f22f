import { MandateError } from '@mandate/contracts';

/*
 * Ids become part of a NATS KV key (a subject) and of a MongoDB `_id`. Allowing only this set
 * means no wildcard (`*`, `>`), no empty token, no `..`, no slash or `$` can reach either.
 * Ids built from untrusted text (an email, an IdP `sub`) go through `encodeKeySegment`.
 */
const ID_PATTERN = /^[A-Za-z0-9_=-](?:[A-Za-z0-9_=.-]{0,510}[A-Za-z0-9_=-])?$/;
const COLLECTION_PATTERN = /^[a-z][a-z0-9-]{0,47}$/;

/** Room for a 255-character name (e.g. a workload's) encoded with `encodeKeySegment`, plus a prefix. */
export const MAX_ID_LENGTH = 512;

export function assertValidId(id: string, field = 'id'): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id) || id.includes('..')) {
    throw new MandateError('invalid_request', `invalid ${field}`, {
      issues: [{ path: field, message: 'must be 1-512 characters of A-Z a-z 0-9 _ = - and inner single dots' }],
    });
  }
  return id;
}

export function assertValidPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  // A prefix may end where an id may not (e.g. "abc."), so check it as the start of an id.
  if (!/^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,511}$/.test(prefix) || prefix.includes('..')) {
    throw new MandateError('invalid_request', 'invalid prefix', {
      issues: [{ path: 'prefix', message: 'must be characters an id may contain' }],
    });
  }
  return prefix;
}

export function assertValidCollection(name: string): string {
  if (!COLLECTION_PATTERN.test(name)) {
    throw new TypeError(`collection name must match ${COLLECTION_PATTERN.source}, got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Turns arbitrary text into a valid id segment (base64url of its UTF-8), reversibly, so that
 * `auth0|abc`, `a.b@example.com` or `*` from an IdP are safe as store keys.
 */
export function encodeKeySegment(value: string): string {
  if (value.length === 0) throw new TypeError('cannot encode an empty key segment');
  return Buffer.from(value, 'utf8').toString('base64url');
}

export function decodeKeySegment(segment: string): string {
  return Buffer.from(segment, 'base64url').toString('utf8');
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new MandateError('invalid_request', 'invalid limit', { issues: [{ path: 'limit', message: 'must be an integer from 1 to 1000' }] });
  }
  return limit;
}

/** Cursors are the last id of the previous page, base64url-encoded so they are opaque. */
export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (encodeCursor(decoded) !== cursor) {
    throw new MandateError('invalid_request', 'invalid cursor', { issues: [{ path: 'cursor', message: 'not a cursor from a previous page' }] });
  }
  return assertValidId(decoded, 'cursor');
}

export function expiryOf(now: number, ttlMs: number | undefined, maxAgeMs?: number): number | undefined {
  if (ttlMs !== undefined && (!Number.isInteger(ttlMs) || ttlMs <= 0)) throw new TypeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  const lifetime = maxAgeMs === undefined ? ttlMs : Math.min(ttlMs ?? maxAgeMs, maxAgeMs);
  return lifetime === undefined ? undefined : now + lifetime;
}

/** A collection's `maxAgeMs`, checked: a positive whole number of seconds or none. */
export function assertValidMaxAge(maxAgeMs: number | undefined): number | undefined {
  if (maxAgeMs !== undefined && (!Number.isInteger(maxAgeMs) || maxAgeMs < 1_000 || maxAgeMs % 1_000 !== 0)) {
    throw new TypeError(`maxAgeMs must be a whole number of seconds, got ${maxAgeMs}`);
  }
  return maxAgeMs;
}
