import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { KeyRing } from './key-ring.js';

/*
 * Layout of a sealed record (version 1):
 *
 *   version(1) | kidLength(1) | kid | wrapIv(12) | wrappedDataKey(32) | wrapTag(16) | dataIv(12) | ciphertext | dataTag(16)
 *
 * The data key is fresh per seal and encrypts the plaintext with AES-256-GCM, AAD = the record's
 * identity. The master key `kid` encrypts the data key with AES-256-GCM, AAD = version, kid and
 * the record's identity. So a flipped bit anywhere fails one of the two tags, and a sealed value
 * copied onto another record fails both. Rewrapping re-encrypts only the data key.
 */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;
const ALGORITHM = 'aes-256-gcm';

export type DecryptionFailure = 'malformed' | 'unsupported_version' | 'unknown_key' | 'tampered';

/** Opening failed. `reason` says why; nothing about the plaintext or keys is in the message. */
export class DecryptionError extends Error {
  override readonly name = 'DecryptionError';
  constructor(readonly reason: DecryptionFailure) {
    super(`cannot open sealed data: ${reason.replace('_', ' ')}`);
  }
}

interface Parsed {
  kid: string;
  header: Buffer;
  wrapIv: Buffer;
  wrappedKey: Buffer;
  wrapTag: Buffer;
  data: Buffer;
}

/**
 * Keys reach the cipher as `KeyObject`s: on Node 24 a cipher made from a raw key buffer costs about
 * ten times one made from a key object (tens of µs against a few), and a seal makes two.
 */
export class EnvelopeCipher {
  /** The ring's master keys as key objects, made once each. */
  readonly #masterKeys = new Map<string, KeyObject>();

  constructor(private readonly ring: KeyRing) {}

  /** Encrypts for the record `recordId` (e.g. `tenant/collection/id`) under the primary key. */
  seal(plaintext: Uint8Array | string, recordId: string): Buffer {
    // One draw for the data key and both IVs.
    const random = randomBytes(DATA_KEY_BYTES + 2 * IV_BYTES);
    const dataKey = random.subarray(0, DATA_KEY_BYTES);
    try {
      const dataIv = random.subarray(DATA_KEY_BYTES, DATA_KEY_BYTES + IV_BYTES);
      const wrapIv = random.subarray(DATA_KEY_BYTES + IV_BYTES);
      const cipher = createCipheriv(ALGORITHM, createSecretKey(dataKey), dataIv).setAAD(dataAad(recordId));
      const input = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
      const data = Buffer.concat([dataIv, cipher.update(input), cipher.final(), cipher.getAuthTag()]);
      return Buffer.concat([this.#wrap(dataKey, recordId, wrapIv), data]);
    } finally {
      dataKey.fill(0);
    }
  }

  open(sealed: Uint8Array, recordId: string): Buffer {
    const parsed = parse(sealed);
    const dataKey = this.#unwrap(parsed, recordId);
    try {
      const iv = parsed.data.subarray(0, IV_BYTES);
      const tag = parsed.data.subarray(parsed.data.length - TAG_BYTES);
      const ciphertext = parsed.data.subarray(IV_BYTES, parsed.data.length - TAG_BYTES);
      const decipher = createDecipheriv(ALGORITHM, createSecretKey(dataKey), iv).setAAD(dataAad(recordId)).setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new DecryptionError('tampered');
    } finally {
      dataKey.fill(0);
    }
  }

  /** Re-encrypts the data key under the current primary key; the ciphertext is untouched. */
  rewrap(sealed: Uint8Array, recordId: string): Buffer {
    const parsed = parse(sealed);
    const dataKey = this.#unwrap(parsed, recordId);
    try {
      return Buffer.concat([this.#wrap(dataKey, recordId, randomBytes(IV_BYTES)), parsed.data]);
    } finally {
      dataKey.fill(0);
    }
  }

  /** Which master key a sealed value needs, to find records to rewrap after a rotation. */
  keyIdOf(sealed: Uint8Array): string {
    return parse(sealed).kid;
  }

  /** String forms for JSON documents: strict base64url, so no two strings open to the same bytes. */
  sealToString(plaintext: Uint8Array | string, recordId: string): string {
    return this.seal(plaintext, recordId).toString('base64url');
  }

  openString(sealed: string, recordId: string): Buffer {
    return this.open(decodeStrict(sealed), recordId);
  }

  rewrapString(sealed: string, recordId: string): string {
    return this.rewrap(decodeStrict(sealed), recordId).toString('base64url');
  }

  #wrap(dataKey: Buffer, recordId: string, wrapIv: Buffer): Buffer {
    const kid = this.ring.primaryId;
    const masterKey = this.#masterKey(kid)!;
    const header = headerOf(kid);
    const cipher = createCipheriv(ALGORITHM, masterKey, wrapIv).setAAD(wrapAad(header, recordId));
    return Buffer.concat([header, wrapIv, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  }

  #masterKey(kid: string): KeyObject | undefined {
    let key = this.#masterKeys.get(kid);
    if (key) return key;
    const raw = this.ring.key(kid);
    if (!raw) return undefined;
    key = createSecretKey(raw);
    this.#masterKeys.set(kid, key);
    return key;
  }

  #unwrap(parsed: Parsed, recordId: string): Buffer {
    const masterKey = this.#masterKey(parsed.kid);
    if (!masterKey) throw new DecryptionError('unknown_key');
    try {
      const decipher = createDecipheriv(ALGORITHM, masterKey, parsed.wrapIv).setAAD(wrapAad(parsed.header, recordId)).setAuthTag(parsed.wrapTag);
      return Buffer.concat([decipher.update(parsed.wrappedKey), decipher.final()]);
    } catch {
      throw new DecryptionError('tampered');
    }
  }
}

function headerOf(kid: string): Buffer {
  const kidBytes = Buffer.from(kid, 'ascii');
  return Buffer.concat([Buffer.from([VERSION, kidBytes.length]), kidBytes]);
}

function wrapAad(header: Buffer, recordId: string): Buffer {
  return Buffer.concat([Buffer.from('mandate/envelope/wrap\0'), header, Buffer.from(recordId, 'utf8')]);
}

function dataAad(recordId: string): Buffer {
  return Buffer.concat([Buffer.from('mandate/envelope/data\0'), Buffer.from(recordId, 'utf8')]);
}

function parse(sealed: Uint8Array): Parsed {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (bytes.length < 2) throw new DecryptionError('malformed');
  if (bytes[0] !== VERSION) throw new DecryptionError('unsupported_version');
  const kidLength = bytes[1]!;
  const headerLength = 2 + kidLength;
  const wrapEnd = headerLength + IV_BYTES + DATA_KEY_BYTES + TAG_BYTES;
  if (kidLength === 0 || bytes.length < wrapEnd + IV_BYTES + TAG_BYTES) throw new DecryptionError('malformed');
  const header = bytes.subarray(0, headerLength);
  return {
    kid: header.subarray(2).toString('latin1'),
    header,
    wrapIv: bytes.subarray(headerLength, headerLength + IV_BYTES),
    wrappedKey: bytes.subarray(headerLength + IV_BYTES, headerLength + IV_BYTES + DATA_KEY_BYTES),
    wrapTag: bytes.subarray(wrapEnd - TAG_BYTES, wrapEnd),
    data: bytes.subarray(wrapEnd),
  };
}

function decodeStrict(encoded: string): Buffer {
  const bytes = Buffer.from(encoded, 'base64url');
  if (bytes.toString('base64url') !== encoded) throw new DecryptionError('malformed');
  return bytes;
}
