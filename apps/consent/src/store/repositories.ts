import type { TenantId, UserRef } from '@mandate/contracts';
import { updateWithRetry, type DocumentCollection, type DocumentStore, type StoredDocument, type SweptCollection } from '@mandate/store';

/*
 * The consent service keeps only browser-side records: where one browser is in one consent
 * (its flow), its trips to the tenant's IdP, and who is signed in in it. The consent ledger
 * itself (sessions, grants) is the vault's. Browsers appear only as a hash of their cookie.
 */
export const CONSENT_COLLECTIONS = ['consent-flows', 'consent-login-trips', 'consent-signed-in'] as const;

export type GrantDuration = { kind: 'once' } | { kind: 'days'; days: number } | { kind: 'until-revoked' };

/**
 * One browser's way through one consent session, keyed by a hash of the browser cookie and the
 * session (so also the `state` of its trip to the provider): what the page showed it (the session
 * as read once, when the page was shown), and, once approved, the PKCE verifier and the term.
 * Deleted by the provider's callback (single use); expires with the session.
 */
export interface ConsentFlowDocument {
  sessionId: string;
  workload: string;
  provider: string;
  user: UserRef;
  scopes: string[];
  customParameters?: Record<string, string>;
  /** Where the browser goes back to (the vault checked it against the workload's list), with the workload's state. */
  returnUrl?: string;
  customState?: string;
  /** Who binds the session to its user: its application (it has a return URL), or a sign-in here. */
  boundBy: 'application' | 'sign-in';
  browser: string;
  expiresAt: number;
  /** The trace of the request that opened the session, for the later steps to continue. */
  traceparent?: string;
  /** `trip`: random per approve, the rest of the `state`, so only the latest trip's answer is taken. */
  approved?: { codeVerifier: string; duration: GrantDuration; redirectUri: string; trip: string };
}

/** One trip to the tenant's IdP, keyed by the random part of `state`; deleted by its callback. */
export interface LoginTripDocument {
  discoveryUrl: string;
  browser: string;
  codeVerifier: string;
  nonce: string;
  /** A path of the consent service to go back to. */
  returnPath: string;
  createdAt: number;
}

/**
 * Who is signed in, keyed by a hash of the browser cookie (per tenant): the user, what the ID
 * token said they hold (its `groups` and `roles`, for deciding approvals) and a name to show;
 * never the token itself. Documents written before groups were kept have none.
 */
export interface SignedInDocument {
  user: UserRef;
  groups?: string[];
  roles?: string[];
  displayName?: string;
  expiresAt: number;
}

/** One kind of browser-side record: short-lived (a TTL each), and single use where it is deleted with its revision. */
export class BrowserRecords<T> {
  constructor(private readonly records: DocumentCollection<T>) {}

  get(tenant: TenantId, id: string): Promise<StoredDocument<T> | undefined> {
    return this.records.get(tenant, id);
  }

  create(tenant: TenantId, id: string, value: T, ttlMs: number): Promise<StoredDocument<T>> {
    return this.records.create(tenant, id, value, { ttlMs });
  }

  /** Written over whatever was there, from what was there. */
  async write(tenant: TenantId, id: string, value: (current: T | undefined) => T, ttlMs: number): Promise<void> {
    await updateWithRetry(this.records, tenant, id, (current) => ({ value: value(current?.value), options: { ttlMs } }));
  }

  /** Changed only if nobody changed it since it was read (`conflict` otherwise). */
  update(tenant: TenantId, stored: StoredDocument<T>, value: T, ttlMs: number): Promise<StoredDocument<T>> {
    return this.records.update(tenant, stored.id, value, stored.revision, { ttlMs });
  }

  /** With a revision, only if it is still that one: of two racing uses, one wins. */
  delete(tenant: TenantId, id: string, expectedRevision?: number): Promise<boolean> {
    return this.records.delete(tenant, id, expectedRevision === undefined ? {} : { expectedRevision });
  }
}

export interface ConsentRepositories {
  flows: BrowserRecords<ConsentFlowDocument>;
  trips: BrowserRecords<LoginTripDocument>;
  signedIn: BrowserRecords<SignedInDocument>;
  expiring: SweptCollection[];
}

export async function openConsentRepositories(store: DocumentStore): Promise<ConsentRepositories> {
  const [flows, trips, signedIn] = await Promise.all(CONSENT_COLLECTIONS.map((name) => store.collection<never>(name)));
  return {
    flows: new BrowserRecords(flows as DocumentCollection<ConsentFlowDocument>),
    trips: new BrowserRecords(trips as DocumentCollection<LoginTripDocument>),
    signedIn: new BrowserRecords(signedIn as DocumentCollection<SignedInDocument>),
    expiring: CONSENT_COLLECTIONS.map((name, i) => ({ name, collection: [flows, trips, signedIn][i]! })),
  };
}
