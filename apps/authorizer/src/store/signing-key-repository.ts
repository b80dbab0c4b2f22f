import { SYSTEM_TENANT, MandateError } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore } from '@mandate/store';

export const SIGNING_KEYS_COLLECTION = 'signing-keys';
const RING_ID = 'wat-ring';

/** One WAT signing key as stored: the private half sealed with the master key ring. */
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

/**
 * The signing keys of the whole deployment, as one document so that every change (a rotation by
 * whichever replica gets there first) is a single compare-and-swap.
 */
export class SigningKeyRepository {
  private constructor(private readonly collection: DocumentCollection<KeyRingDocument>) {}

  static async open(store: DocumentStore): Promise<SigningKeyRepository> {
    return new SigningKeyRepository(await store.collection(SIGNING_KEYS_COLLECTION));
  }

  async load(): Promise<StoredRing | undefined> {
    const stored = await this.collection.get(SYSTEM_TENANT, RING_ID);
    return stored && { ring: stored.value, revision: stored.revision };
  }

  /** Writes the ring if nobody else wrote since `revision` (undefined: if none exists); false if they did. */
  async save(ring: KeyRingDocument, revision: number | undefined): Promise<boolean> {
    try {
      if (revision === undefined) await this.collection.create(SYSTEM_TENANT, RING_ID, ring);
      else await this.collection.update(SYSTEM_TENANT, RING_ID, ring, revision);
      return true;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return false;
      throw error;
    }
  }
}
