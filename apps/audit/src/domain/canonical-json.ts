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
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON cannot hold a non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
      const record = value as Record<string, unknown>;
      // Absent and undefined members are the same thing in JSON: leave them out.
      const keys = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}
