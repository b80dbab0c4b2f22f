import type { UserRef } from '@mandate/contracts';

export const VAULT_COLLECTIONS = ['providers', 'user-tokens', 'machine-tokens', 'refresh-leases', 'grants', 'consent-sessions'] as const;

/** A provider as stored; secrets only sealed (libs/crypto), each bound to the provider's identity. */
export interface ProviderDocument {
  name: string;
  kind: 'oauth2' | 'api-key';
  description: string;
  vendor?: string;
  vendorParams?: Record<string, string>;
  discoveryUrl?: string;
  metadata?: { issuer?: string | undefined; authorizationEndpoint?: string | undefined; tokenEndpoint: string; revocationEndpoint?: string | undefined };
  clientId?: string;
  clientAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  defaultScopes?: string[];
  tokenParameters?: Record<string, string>;
  allowedWorkloads: string[];
  sealed: { clientSecret?: string; clientPrivateJwk?: string; apiKey?: string };
  /** Being deleted: refused for every use while its users' tokens and grants are retired. */
  retiring?: true;
  createdAt: string;
  updatedAt: string;
}

/** A user's tokens for one provider and scope set. `sealed` opens to `SealedUserTokens`. */
export interface UserTokensDocument {
  user: UserRef;
  provider: string;
  scopes: string[];
  sealed: string;
  tokenType: string;
  /** Milliseconds since the epoch; absent when the provider did not say. */
  expiresAt?: number;
  /** Set when the provider refused the refresh token: the person must consent again. */
  needsConsent?: boolean;
  updatedAt: number;
}

export interface SealedUserTokens {
  accessToken: string;
  refreshToken?: string;
}

export interface MachineTokenDocument {
  sealed: string;
  tokenType: string;
  scopes: string[];
  expiresAt: number;
  /** When it is replaced (see `staleAt` in the domain); absent in tokens cached before it was kept. */
  staleAt?: number;
}

/**
 * What a user-token refresher keeps in its lease (libs/store `LeaseRecords`): tokens the provider
 * already returned but that are not yet in the token record. If the refresher dies there, the
 * next one recovers them instead of spending the (rotated, now invalid) old refresh token.
 */
export interface PendingTokens {
  sealed: string;
  expiresAt?: number;
}

export interface GrantDocument {
  workload: string;
  provider: string;
  user: UserRef;
  /** Every scope of the grant with its term: epoch ms, or null until revoked. */
  scopeTerms: Record<string, number | null>;
  grantedAt: number;
  /** "This time only": deleted (compare-and-set) by the one token release it allows. */
  once?: boolean;
}

export interface ConsentSessionDocument {
  workload: string;
  provider: string;
  user: UserRef;
  scopes: string[];
  returnUrl?: string;
  customState?: string;
  customParameters?: Record<string, string>;
  /** The scopes not yet granted, which the person is asked about; absent: all of `scopes`. */
  newScopes?: string[];
  /** Return-URL binding: the provider's tokens, sealed, held until the application completes the session. */
  held?: { sealed: string; grantExpiresAt?: number; once: boolean; completionHash: string };
  state: 'pending' | 'completed' | 'failed';
  createdAt: number;
  /** The trace of the request that opened it (W3C traceparent): the consent steps continue it. */
  traceparent?: string;
}
