/**
 * Canonical JSON in the manner of RFC 8785 (JCS) for the values an audit record can hold:
 * object members sorted by the UTF-16 code units of their names, no white space, strings and
 * numbers serialised as ECMAScript's `JSON.stringify` does (which is what JCS specifies). Two
 * parties that agree on the data therefore agree on the bytes, whatever order fields arrived in.
 *
 * Refuses what JSON cannot say exactly (`NaN`, `Infinity`, `undefined` in an array, functions,
 * `bigint`), so a hash never silently covers something other than the record.
 */
export function canonicalJson(value: unknown): string {
  // Every audit record is hashed on the append path and again by every verify. The engine's own
  // serialiser is several times faster than concatenating strings here, so the value is copied
  // with its members inserted in sorted order and the engine writes that out; only members whose
  // place the engine would not keep (see `keepsInsertionOrder`) take the slow path.
  try {
    return JSON.stringify(sortedCopy(value));
  } catch (error) {
    if (error !== ORDER_NOT_KEPT) throw error;
    return serialise(value);
  }
}

const ORDER_NOT_KEPT = Symbol('a member name whose insertion order is not kept');

/**
 * Engines list array-index names ("0", "42") before all others, in numeric order, whatever the
 * insertion order, and `__proto__` cannot be inserted as a plain member at all. A name that
 * starts with a digit is treated as a possible index, which is cautious but cheap to test.
 */
function keepsInsertionOrder(name: string): boolean {
  const first = name.charCodeAt(0);
  return !(first >= 48 && first <= 57) && name !== '__proto__';
}

function sortedCopy(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot hold a non-finite number');
      return value;
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) {
        const copy = new Array<unknown>(value.length);
        for (let i = 0; i < value.length; i++) copy[i] = sortedCopy(value[i]);
        return copy;
      }
      const record = value as Record<string, unknown>;
      const copy: Record<string, unknown> = {};
      for (const key of Object.keys(record).sort()) {
        const member = record[key];
        // Absent and undefined members are the same thing in JSON: leave them out.
        if (member === undefined) continue;
        if (!keepsInsertionOrder(key)) throw ORDER_NOT_KEPT;
        copy[key] = sortedCopy(member);
      }
      return copy;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}

/** The same bytes, written member by member: for values the fast path cannot take. */
function serialise(value: unknown): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot hold a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + serialise(value[i]);
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      let out = '{';
      for (const key of Object.keys(record).sort()) {
        const member = record[key];
        if (member === undefined) continue;
        out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + serialise(member);
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}
