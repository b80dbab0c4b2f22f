import { describe, expect, it } from 'vitest';
import { calculateJwkThumbprint } from 'jose';
import { canonicalJson } from './canonical-json.js';
import { DigestKeyRing, jwkThumbprint } from './signing-keys.js';

describe('canonicalJson (RFC 8785 style)', () => {
  it('sorts members by UTF-16 code units at every depth and leaves out white space', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
    // RFC 8785 section 3.2.3: by UTF-16 code units, so U+20AC (0x20ac) sorts before U+1F600 (0xd83d …).
    expect(canonicalJson({ '\u{1F600}': 1, '\u20ac': 2, '\r': 3, '1': 4, 'ö': 5 })).toBe('{"\\r":3,"1":4,"ö":5,"€":2,"😀":1}');
  });

  it('serialises numbers and strings as ECMAScript does (RFC 8785 appendix B samples)', () => {
    expect(canonicalJson([1e21, 1e-7, 0.1, -0, 333333333.3333333, 4.5, 2e-3])).toBe('[1e+21,1e-7,0.1,0,333333333.3333333,4.5,0.002]');
    expect(canonicalJson('\u0000\u001f"\\/\u2028é')).toBe('"\\u0000\\u001f\\"\\\\/\u2028é"');
  });

  it('drops undefined members and refuses what JSON cannot hold exactly', () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ n: Infinity })).toThrow(TypeError);
    expect(() => canonicalJson({ n: 1n })).toThrow(TypeError);
    expect(() => canonicalJson([1, undefined])).toThrow(TypeError);
    expect(() => canonicalJson({ deep: [{ f: () => 1 }] })).toThrow(TypeError);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
  });

  it('keeps sorted order for member names an engine would reorder or cannot insert', () => {
    // Index-like names: an engine lists 2 before 10; JCS sorts "10" before "2".
    expect(canonicalJson({ b: 1, '2': 'two', '10': 'ten', a: { '01': 0, '1': 1 } })).toBe('{"10":"ten","2":"two","a":{"01":0,"1":1},"b":1}');
    // A member named __proto__ (JSON.parse makes one) is data, and is covered like any other.
    const parsed: unknown = JSON.parse('{"z":1,"__proto__":{"polluted":true},"a":2}');
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"polluted":true},"a":2,"z":1}');
    expect(canonicalJson({ nested: [parsed] })).toBe('{"nested":[{"__proto__":{"polluted":true},"a":2,"z":1}]}');
  });

  it('writes the same bytes whichever member order a record arrived in', () => {
    const one = { record: { id: 'r1', actor: { workload: 'w', user: { sub: 's', iss: 'i' } }, details: { n: 1, list: ['b', 'a'] } }, sequence: 3 };
    const other = { sequence: 3, record: { details: { list: ['b', 'a'], n: 1 }, actor: { user: { iss: 'i', sub: 's' }, workload: 'w' }, id: 'r1' } };
    expect(canonicalJson(one)).toBe(canonicalJson(other));
    expect(canonicalJson(one)).toBe('{"record":{"actor":{"user":{"iss":"i","sub":"s"},"workload":"w"},"details":{"list":["b","a"],"n":1},"id":"r1"},"sequence":3}');
  });
});

describe('DigestKeyRing', () => {
  it('names keys by their RFC 7638 thumbprint, signs, and tells a foreign key from a bad signature', async () => {
    const ring = DigestKeyRing.fromJson(DigestKeyRing.generateFile(), 'test');
    const [current] = ring.publicKeys();
    expect(current!.kid).toBe(await calculateJwkThumbprint(current!.publicJwk));
    expect(jwkThumbprint(current!.publicJwk)).toBe(current!.kid);
    const signature = ring.sign('data');
    expect(ring.verify(ring.currentKid, 'data', signature)).toBe('valid');
    expect(ring.verify(ring.currentKid, 'date', signature)).toBe('invalid');
    expect(ring.verify('someone-else', 'data', signature)).toBe('unknown-key');
  });

  it('keeps retired public keys for old digests, and refuses a private half that does not match its public half', () => {
    const old = DigestKeyRing.fromJson(DigestKeyRing.generateFile(), 'old');
    const signed = old.sign('2024 digest');
    const next = JSON.parse(DigestKeyRing.generateFile()) as { current: { x: string }; retired: unknown[] };
    next.retired = [old.publicKeys()[0]!.publicJwk];
    const ring = DigestKeyRing.fromJson(JSON.stringify(next), 'rotated');
    expect(ring.publicKeys().map((k) => k.status)).toEqual(['current', 'retired']);
    expect(ring.verify(old.currentKid, '2024 digest', signed)).toBe('valid');
    const mismatched = { ...next, current: { ...next.current, x: old.publicKeys()[0]!.publicJwk.x } };
    expect(() => DigestKeyRing.fromJson(JSON.stringify(mismatched), 'bad')).toThrow(/inconsistent/);
    expect(() => DigestKeyRing.fromJson('{"current":{}}', 'bad')).toThrow(/not an audit signing key file: current/);
  });
});
