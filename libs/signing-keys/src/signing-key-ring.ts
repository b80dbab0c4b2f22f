import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { KeyRingDocument, StoredRing, StoredSigningKey } from './stored-ring.js';

export interface SigningKeyStore {
  load(): Promise<StoredRing | undefined>;
  save(ring: KeyRingDocument, revision: number | undefined): Promise<boolean>;
}

export interface SigningKeyRingOptions {
  store: SigningKeyStore;
  cipher: EnvelopeCipher;
  alg: StoredSigningKey['alg'];
  /** A key signs this long before the next one takes over. */
  rotationIntervalMs: number;
  /** A new key is published this long before it signs. */
  activationDelayMs: number;
  /** The longest anything it signs lives: a replaced key stays published until the last of it has expired. */
  maxTokenLifetimeMs: number;
  /**
   * The record id a key's sealed private half is bound to (the envelope's AAD), so a sealed key
   * cannot be moved to another ring, or another kid, and still open.
   */
  sealedRecordId: (kid: string) => string;
  now?: () => number;
}

export interface ActiveSigningKey {
  kid: string;
  alg: StoredSigningKey['alg'];
  key: CryptoKey;
}

/** Verifiers may run a little ahead or behind; keep old keys this much longer. */
const RETENTION_SLACK_MS = 60_000;

/*
 * Life of a signing key:
 *
 *   published ──(activatesAt)──> signing ──(a newer key activates)──> retired ──(+ max token life)──> removed
 *
 * A key is in the JWKS from the moment it is created, so verifiers have it cached before the
 * first token it signs arrives; it stays there until every token it signed has expired. (Removal
 * happens at the next rotation after that: the ring changes only when a key is added.)
 *
 * One ring is shared by every replica of its service: the private halves are sealed with the
 * master keys in one stored document, each change a compare-and-swap; a replica signs with the
 * copy it last loaded (`reload`), so nothing is read from the store per signature.
 */
export class SigningKeyRing {
  readonly #options: Required<SigningKeyRingOptions>;
  #stored: StoredRing | undefined;
  readonly #privateKeys = new Map<string, Promise<CryptoKey>>();

  constructor(options: SigningKeyRingOptions) {
    this.#options = { now: Date.now, ...options };
  }

  /** Loads the ring, creating the first key if this is the first replica ever to start. */
  async start(): Promise<void> {
    await this.reload();
    if (this.#stored) return;
    // Saved only if there is still none: when another replica created it first, theirs is what reload reads.
    await this.#options.store.save({ keys: [await this.#newKey(this.#options.now())] }, undefined);
    await this.reload();
  }

  async reload(): Promise<void> {
    this.#stored = await this.#options.store.load();
  }

  /** The key that signs now: the newest one whose activation time has come. */
  async signingKey(): Promise<ActiveSigningKey> {
    const key = this.#current(this.#options.now());
    return { kid: key.kid, alg: key.alg, key: await this.#privateKey(key) };
  }

  /** Every key a verifier may meet: pending, signing and retired-but-not-yet-expired. */
  publicKeys(): JWK[] {
    return this.#ring().keys.map((key) => ({ ...key.publicJwk, kid: key.kid, alg: key.alg, use: 'sig' }));
  }

  /** Adds a key that activates after the publication delay; safe to race with other replicas. */
  async rotate(): Promise<StoredSigningKey> {
    for (let attempt = 0; attempt < 5; attempt++) {
      await this.reload();
      const now = this.#options.now();
      const next = await this.#newKey(now + this.#options.activationDelayMs);
      const keys = [...this.#prune(this.#ring().keys, now), next];
      if (await this.#options.store.save({ keys }, this.#stored?.revision)) {
        await this.reload();
        return next;
      }
    }
    throw new Error('could not rotate the signing keys: the ring kept changing under us');
  }

  /** Rotates when the signing key has served its interval and no successor is waiting. */
  async rotateIfDue(): Promise<StoredSigningKey | undefined> {
    await this.reload();
    const now = this.#options.now();
    const keys = this.#ring().keys;
    const pending = keys.some((key) => key.activatesAt > now);
    if (pending || this.#current(now).activatesAt + this.#options.rotationIntervalMs > now) return undefined;
    return this.rotate();
  }

  #ring(): KeyRingDocument {
    if (!this.#stored) throw new Error('the signing key ring is not loaded; call start() first');
    return this.#stored.ring;
  }

  #current(now: number): StoredSigningKey {
    const keys = this.#ring().keys;
    const active = keys.filter((key) => key.activatesAt <= now);
    return active.at(-1) ?? keys[0]!;
  }

  /** Drops keys whose successor has been signing for longer than anything signed lives. */
  #prune(keys: readonly StoredSigningKey[], now: number): StoredSigningKey[] {
    return keys.filter((key, index) => {
      const successor = keys[index + 1];
      return !successor || successor.activatesAt + this.#options.maxTokenLifetimeMs + RETENTION_SLACK_MS > now;
    });
  }

  #privateKey(stored: StoredSigningKey): Promise<CryptoKey> {
    let key = this.#privateKeys.get(stored.kid);
    if (!key) {
      const jwk = JSON.parse(this.#options.cipher.openString(stored.sealedPrivateJwk, this.#options.sealedRecordId(stored.kid)).toString('utf8')) as JWK;
      key = importJWK(jwk, stored.alg) as Promise<CryptoKey>;
      this.#privateKeys.set(stored.kid, key);
    }
    return key;
  }

  async #newKey(activatesAt: number): Promise<StoredSigningKey> {
    const { alg } = this.#options;
    const pair = await generateKeyPair(alg, { extractable: true });
    const publicJwk = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = await exportJWK(pair.privateKey);
    return {
      kid,
      alg,
      publicJwk: { ...publicJwk },
      sealedPrivateJwk: this.#options.cipher.sealToString(JSON.stringify(privateJwk), this.#options.sealedRecordId(kid)),
      createdAt: this.#options.now(),
      activatesAt,
    };
  }
}
