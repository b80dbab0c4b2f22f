import type { DocumentCollection, DocumentStore } from '@mandate/store';
import type { UserRef } from '@mandate/contracts';

export const LOGIN_TRIPS_COLLECTION = 'consent-login-trips';
export const SIGNED_IN_COLLECTION = 'consent-signed-in';

/** One trip to the tenant's IdP, keyed by the random part of `state`; deleted by its callback. */
export interface LoginTripDocument {
  discoveryUrl: string;
  /** A hash of the browser cookie, never the cookie. */
  browser: string;
  codeVerifier: string;
  nonce: string;
  /** A path of the consent service to go back to. */
  returnPath: string;
  createdAt: number;
}

/** Who is signed in, keyed by a hash of the browser cookie (per tenant). */
export interface SignedInDocument {
  user: UserRef;
  expiresAt: number;
}

export async function openSignIns(store: DocumentStore): Promise<{ trips: DocumentCollection<LoginTripDocument>; signedIn: DocumentCollection<SignedInDocument> }> {
  return { trips: await store.collection(LOGIN_TRIPS_COLLECTION), signedIn: await store.collection(SIGNED_IN_COLLECTION) };
}
