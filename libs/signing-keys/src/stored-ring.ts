import { SYSTEM_TENANT, MandateError } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore } from '@mandate/store';

/** One signing key as stored: the private half sealed with the master key ring. */
export interface StoredSigningKey {
  kid: string;
  alg: 'EdDSA' | 'ES256';
  publicJwk: Record<string, unknown>;
  /** `EnvelopeCipher.sealToString` of the private JWK, bound to this kid. */
  sealedPrivateJwk: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** When it starts signing; published from `createdAt`. */
  activatesAt: number;
}

export interface KeyRingDocument {
  keys: StoredSigningKey[];
}

export interface StoredRing {
  ring: KeyRingDocument;
  revision: number;
}

/** Where a ring is kept: its collection, and its document's id in the system tenant. */
export interface RingLocation {
  collection: string;
  ring: string;
}

/**
 * The signing keys of one ring for the whole deployment, as one document so that every change (a
 * rotation by whichever replica gets there first) is a single compare-and-swap.
 */
export class SigningKeyRepository {
  private constructor(
    private readonly collection: DocumentCollection<KeyRingDocument>,
    private readonly ringId: string,
  ) {}

  static async open(store: DocumentStore, location: RingLocation): Promise<SigningKeyRepository> {
    return new SigningKeyRepository(await store.collection(location.collection), location.ring);
  }

  async load(): Promise<StoredRing | undefined> {
    const stored = await this.collection.get(SYSTEM_TENANT, this.ringId);
    return stored && { ring: stored.value, revision: stored.revision };
  }

  /** Writes the ring if nobody else wrote since `revision` (undefined: if none exists); false if they did. */
  async save(ring: KeyRingDocument, revision: number | undefined): Promise<boolean> {
    try {
      if (revision === undefined) await this.collection.create(SYSTEM_TENANT, this.ringId, ring);
      else await this.collection.update(SYSTEM_TENANT, this.ringId, ring, revision);
      return true;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return false;
      throw error;
    }
  }
}
