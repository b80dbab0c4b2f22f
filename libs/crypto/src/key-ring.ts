import { randomBytes } from 'node:crypto';
import { z } from 'zod';

export const MASTER_KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;

export const keyRingSchema = z.object({
  primary: z.string().regex(KEY_ID, 'key ids are 1-64 characters of A-Z a-z 0-9 _ -'),
  keys: z.record(z.string().regex(KEY_ID, 'key ids are 1-64 characters of A-Z a-z 0-9 _ -'), z.string()),
});

export type KeyRingJson = z.output<typeof keyRingSchema>;

/** Why a master key is refused; never includes the key. */
export function weakKeyReason(key: Uint8Array): string | undefined {
  if (key.length !== MASTER_KEY_BYTES) return `must be exactly ${MASTER_KEY_BYTES} bytes (base64), got ${key.length}`;
  // 32 random bytes have about 28 distinct values; fewer than 16 means a pattern, not a key.
  if (new Set(key).size < 16) return 'looks like a pattern, not random bytes (generate one with `openssl rand -base64 32`)';
  return undefined;
}

export class WeakKeyError extends Error {
  override readonly name = 'WeakKeyError';
  constructor(
    readonly keyId: string,
    reason: string,
  ) {
    super(`master key ${keyId}: ${reason}`);
  }
}

/**
 * The master keys (key-encryption keys) by id, and which one new writes use. Old keys stay so
 * old records remain readable until they are rewrapped.
 */
export class KeyRing {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly primaryId: string;

  private constructor(keys: Map<string, Buffer>, primaryId: string) {
    if (!keys.has(primaryId)) throw new TypeError(`primary key ${primaryId} is not in the ring`);
    this.#keys = keys;
    this.primaryId = primaryId;
  }

  /** A ring with one fresh random key. */
  static generate(keyId = 'k1'): KeyRing {
    return new KeyRing(new Map([[keyId, randomBytes(MASTER_KEY_BYTES)]]), keyId);
  }

  /** Parses and checks every key; throws `WeakKeyError` naming the weak key's id. */
  static fromJSON(input: unknown): KeyRing {
    const json = keyRingSchema.parse(input);
    const keys = new Map<string, Buffer>();
    for (const [id, encoded] of Object.entries(json.keys)) {
      const key = Buffer.from(encoded, 'base64');
      if (key.toString('base64') !== encoded.replace(/\s+/g, '')) throw new WeakKeyError(id, 'is not valid base64');
      const reason = weakKeyReason(key);
      if (reason) throw new WeakKeyError(id, reason);
      keys.set(id, key);
    }
    if (!keys.has(json.primary)) throw new WeakKeyError(json.primary, 'is named primary but is not in keys');
    return new KeyRing(keys, json.primary);
  }

  /** Rotation: a new random key becomes primary; every existing key stays for reading. */
  rotate(newKeyId = `k${this.#keys.size + 1}`): KeyRing {
    if (this.#keys.has(newKeyId)) throw new TypeError(`key id ${newKeyId} is already in the ring`);
    return new KeyRing(new Map([...this.#keys, [newKeyId, randomBytes(MASTER_KEY_BYTES)]]), newKeyId);
  }

  /** Retires a key once no record uses it any more. */
  without(keyId: string): KeyRing {
    if (keyId === this.primaryId) throw new TypeError('cannot remove the primary key');
    const keys = new Map(this.#keys);
    keys.delete(keyId);
    return new KeyRing(keys, this.primaryId);
  }

  key(keyId: string): Buffer | undefined {
    return this.#keys.get(keyId);
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  toJSON(): KeyRingJson {
    return { primary: this.primaryId, keys: Object.fromEntries([...this.#keys].map(([id, key]) => [id, key.toString('base64')])) };
  }
}
