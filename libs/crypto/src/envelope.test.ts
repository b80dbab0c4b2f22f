import { describe, expect, it } from 'vitest';
import { DecryptionError, EnvelopeCipher } from './envelope.js';
import { KeyRing } from './key-ring.js';

const record = 'acme/providers/google';
const secret = 'client-secret-THIS-MUST-NEVER-BE-STORED-IN-CLEAR';

function reasonOf(open: () => unknown): string {
  try {
    open();
    return 'opened';
  } catch (error) {
    if (error instanceof DecryptionError) return error.reason;
    throw error;
  }
}

describe('EnvelopeCipher', () => {
  const ring = KeyRing.generate();
  const cipher = new EnvelopeCipher(ring);

  it('opens what it sealed, for text and for bytes', () => {
    expect(cipher.open(cipher.seal(secret, record), record).toString('utf8')).toBe(secret);
    const bytes = Buffer.from([0, 1, 2, 255]);
    expect(cipher.open(cipher.seal(bytes, record), record)).toEqual(bytes);
    expect(cipher.open(cipher.seal('', record), record).toString()).toBe('');
  });

  it('leaves no plaintext in the stored bytes or their string form', () => {
    const sealed = cipher.seal(secret, record);
    const text = cipher.sealToString(secret, record);
    for (const form of [sealed.toString('latin1'), sealed.toString('utf8'), text, Buffer.from(text, 'base64url').toString('latin1')]) {
      expect(form).not.toContain('client-secret');
      expect(form).not.toContain(Buffer.from(secret).toString('base64'));
      expect(form).not.toContain(Buffer.from(secret).toString('hex'));
    }
  });

  it('fails to open when any single byte is flipped, wherever it is', () => {
    const sealed = cipher.seal(secret, record);
    for (let index = 0; index < sealed.length; index += 1) {
      for (const mask of [0x01, 0x80]) {
        const tampered = Buffer.from(sealed);
        tampered[index]! ^= mask;
        expect(reasonOf(() => cipher.open(tampered, record)), `byte ${index} ^ ${mask}`).not.toBe('opened');
      }
    }
  });

  it('fails to open the string form when any character is changed', () => {
    const sealed = cipher.sealToString(secret, record);
    for (let index = 0; index < sealed.length; index += 1) {
      const replacement = sealed[index] === 'A' ? 'B' : 'A';
      const tampered = sealed.slice(0, index) + replacement + sealed.slice(index + 1);
      expect(reasonOf(() => cipher.openString(tampered, record)), `char ${index}`).not.toBe('opened');
    }
  });

  it('fails to open a sealed value copied onto another record', () => {
    const sealed = cipher.seal(secret, record);
    expect(reasonOf(() => cipher.open(sealed, 'acme/providers/github'))).toBe('tampered');
    expect(reasonOf(() => cipher.open(sealed, 'other-tenant/providers/google'))).toBe('tampered');
  });

  it('gives different ciphertexts for the same plaintext twice', () => {
    const a = cipher.seal(secret, record);
    const b = cipher.seal(secret, record);
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(-16).equals(b.subarray(-16))).toBe(false);
  });

  it('refuses truncated, empty and foreign input as malformed or unsupported', () => {
    const sealed = cipher.seal(secret, record);
    expect(reasonOf(() => cipher.open(Buffer.alloc(0), record))).toBe('malformed');
    expect(reasonOf(() => cipher.open(sealed.subarray(0, 40), record))).toBe('malformed');
    expect(reasonOf(() => cipher.open(Buffer.concat([Buffer.from([2]), sealed.subarray(1)]), record))).toBe('unsupported_version');
    expect(reasonOf(() => cipher.openString('not base64url!', record))).toBe('malformed');
  });

  it('refuses a value sealed under a key the ring does not hold', () => {
    const other = new EnvelopeCipher(KeyRing.generate('k9'));
    expect(reasonOf(() => cipher.open(other.seal(secret, record), record))).toBe('unknown_key');
    // Same key id, different key material: the wrap tag fails.
    expect(reasonOf(() => cipher.open(new EnvelopeCipher(KeyRing.generate()).seal(secret, record), record))).toBe('tampered');
  });

  it('never puts the plaintext or key material in an error message', () => {
    const sealed = cipher.seal(secret, record);
    try {
      cipher.open(sealed, 'elsewhere');
    } catch (error) {
      expect(String(error)).not.toContain(secret);
      expect(JSON.stringify(error)).not.toContain(ring.toJSON().keys['k1']);
    }
  });
});

describe('key rotation', () => {
  it('reads old records after rotation, writes new ones with the new key, and rewraps', () => {
    const before = KeyRing.generate();
    const old = new EnvelopeCipher(before).seal(secret, record);

    const after = before.rotate();
    expect(after.primaryId).toBe('k2');
    const cipher = new EnvelopeCipher(after);
    expect(cipher.keyIdOf(old)).toBe('k1');
    expect(cipher.open(old, record).toString()).toBe(secret);
    expect(cipher.keyIdOf(cipher.seal(secret, record))).toBe('k2');

    const rewrapped = cipher.rewrap(old, record);
    expect(cipher.keyIdOf(rewrapped)).toBe('k2');
    // Only the wrapped data key changed; the data part is byte for byte the same.
    expect(rewrapped.subarray(-40).equals(old.subarray(-40))).toBe(true);

    const retired = new EnvelopeCipher(after.without('k1'));
    expect(retired.open(rewrapped, record).toString()).toBe(secret);
    expect(reasonOf(() => retired.open(old, record))).toBe('unknown_key');
  });

  it('refuses to rewrap a value that belongs to another record', () => {
    const cipher = new EnvelopeCipher(KeyRing.generate().rotate());
    const sealed = cipher.seal(secret, record);
    expect(reasonOf(() => cipher.rewrap(sealed, 'acme/providers/other'))).toBe('tampered');
  });
});
