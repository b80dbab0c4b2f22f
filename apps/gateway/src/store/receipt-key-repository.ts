import { SigningKeyRepository } from '@mandate/signing-keys';
import type { DocumentStore } from '@mandate/store';

/** A collection of its own (not the authorizer's `signing-keys`): each service's NATS user reaches only its own buckets. */
export const RECEIPT_KEYS_COLLECTION = 'receipt-signing-keys';

/** The receipt signing keys of every gateway replica of the deployment: one ring, one document. */
export function openReceiptSigningKeys(store: DocumentStore): Promise<SigningKeyRepository> {
  return SigningKeyRepository.open(store, { collection: RECEIPT_KEYS_COLLECTION, ring: 'receipt-ring' });
}

/** What a receipt key's sealed private half is bound to, so it opens as nothing else (a gateway's workload key, a WAT key). */
export const receiptKeyRecordId = (kid: string): string => `system/receipt-signing-keys/${kid}`;
