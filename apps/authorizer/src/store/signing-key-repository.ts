import { SigningKeyRepository } from '@mandate/signing-keys';
import type { DocumentStore } from '@mandate/store';

export const SIGNING_KEYS_COLLECTION = 'signing-keys';

/** The WAT signing keys of the whole deployment: one ring (`@mandate/signing-keys`), one document. */
export function openWatSigningKeys(store: DocumentStore): Promise<SigningKeyRepository> {
  return SigningKeyRepository.open(store, { collection: SIGNING_KEYS_COLLECTION, ring: 'wat-ring' });
}

/** What a WAT key's sealed private half is bound to; unchanged since the ring moved into its lib, so stored keys still open. */
export const watKeyRecordId = (kid: string): string => `system/signing-keys/${kid}`;
