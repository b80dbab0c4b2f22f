import type { DocumentCollection, DocumentStore } from '@mandate/store';
import type { UserRef } from '@mandate/contracts';

export const FLOWS_COLLECTION = 'consent-flows';

export type GrantDuration = { kind: 'once' } | { kind: 'days'; days: number } | { kind: 'until-revoked' };

/**
 * One trip to the provider, keyed by the random part of `state`: which session it belongs to,
 * which browser started it (a hash of its cookie, never the cookie), the PKCE verifier. Deleted
 * by the callback (single use); expires with the session.
 */
export interface ConsentFlowDocument {
  sessionId: string;
  workload: string;
  provider: string;
  user: UserRef;
  scopes: string[];
  browser: string;
  codeVerifier: string;
  duration: GrantDuration;
  redirectUri: string;
  createdAt: number;
  /** The trace of the request that opened the session, for the callback to continue. */
  traceparent?: string;
}

export function openFlows(store: DocumentStore): Promise<DocumentCollection<ConsentFlowDocument>> {
  return store.collection(FLOWS_COLLECTION);
}
