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
      // Loops and concatenation rather than map/filter/join: every audit record is hashed on the
      // append path and again by every verify, and the intermediate arrays were most of the cost.
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = '{';
      for (const key of keys) {
        const member = record[key];
        // Absent and undefined members are the same thing in JSON: leave them out.
        if (member === undefined) continue;
        out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + canonicalJson(member);
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold a ${typeof value}`);
  }
}
