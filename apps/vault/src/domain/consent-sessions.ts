import { randomBytes } from 'node:crypto';
import { MandateError, type TenantId, type UserRef } from '@mandate/contracts';
import type { DocumentCollection } from '@mandate/store';
import type { ConsentSessionDocument } from '../store/vault-records.js';

/** Consent sessions live ten minutes and are used once. */
export const CONSENT_SESSION_TTL_MS = 10 * 60_000;

export interface OpenedSession {
  sessionId: string;
  authorizationUrl: string;
}

/*
 * A consent session, as far as the vault sees it:
 *
 *   pending ──person approves──> completed
 *      │──person denies / provider error──> failed
 *      └──10 minutes──> gone (reads as expired)
 *
 * The consent service (its pages, the provider redirect, the callback) moves it on; the vault
 * opens it and reports on it when the agent asks again with its id.
 */
export class ConsentSessions {
  constructor(
    private readonly sessions: DocumentCollection<ConsentSessionDocument>,
    private readonly consentBaseUrl: string,
    private readonly now: () => number = Date.now,
  ) {}

  async open(tenant: TenantId, session: Omit<ConsentSessionDocument, 'state' | 'createdAt'>): Promise<OpenedSession> {
    const sessionId = randomBytes(24).toString('base64url');
    await this.sessions.create(tenant, sessionId, { ...session, state: 'pending', createdAt: this.now() }, { ttlMs: CONSENT_SESSION_TTL_MS });
    return { sessionId, authorizationUrl: `${this.consentBaseUrl.replace(/\/$/, '')}/consent/${sessionId}?tenant=${tenant}` };
  }

  /** A live session (expired or unknown: not_found), with when it expires. */
  async get(tenant: TenantId, sessionId: string): Promise<ConsentSessionDocument & { expiresAt: number }> {
    const stored = await this.sessions.get(tenant, sessionId);
    const expiresAt = (stored?.value.createdAt ?? 0) + CONSENT_SESSION_TTL_MS;
    if (!stored || expiresAt <= this.now()) throw new MandateError('not_found', 'no such consent session (it may have expired)');
    return { ...stored.value, expiresAt };
  }

  /** The session, which must be pending and opened for this provider and user. */
  async requirePending(tenant: TenantId, sessionId: string, expected: { provider: string; user: UserRef }): Promise<ConsentSessionDocument> {
    const session = await this.get(tenant, sessionId);
    if (session.provider !== expected.provider || session.user.iss !== expected.user.iss || session.user.sub !== expected.user.sub) {
      throw new MandateError('not_found', 'no such pending consent session for this provider and user');
    }
    if (session.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.state}`);
    return session;
  }

  /** pending -> failed (the person denied, or the provider refused); anything else is refused. */
  async fail(tenant: TenantId, sessionId: string): Promise<ConsentSessionDocument> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored) throw new MandateError('not_found', 'no such consent session (it may have expired)');
    const session = stored.value;
    if (session.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.state}`);
    const remainingMs = session.createdAt + CONSENT_SESSION_TTL_MS - this.now();
    if (remainingMs <= 0) throw new MandateError('not_found', 'the consent session has expired');
    await this.sessions.update(tenant, sessionId, { ...session, state: 'failed' }, stored.revision, { ttlMs: remainingMs });
    return session;
  }

  /**
   * pending -> completed, for the workload, user and provider it was opened for; anything else
   * (another user's session, one already ended) is refused and changes nothing.
   */
  async complete(tenant: TenantId, sessionId: string, expected: { workload: string; provider: string; user: UserRef }): Promise<void> {
    const stored = await this.sessions.get(tenant, sessionId);
    const session = stored?.value;
    if (!stored || !session || session.workload !== expected.workload || session.provider !== expected.provider || session.user.iss !== expected.user.iss || session.user.sub !== expected.user.sub) {
      throw new MandateError('not_found', 'no such pending consent session for this workload, provider and user');
    }
    if (session.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.state}`);
    const remainingMs = session.createdAt + CONSENT_SESSION_TTL_MS - this.now();
    if (remainingMs <= 0) throw new MandateError('not_found', 'the consent session has expired');
    await this.sessions.update(tenant, sessionId, { ...session, state: 'completed' }, stored.revision, { ttlMs: remainingMs });
  }

  /** Where a session stands, for the workload and user it was opened for (anyone else: not found). */
  async status(tenant: TenantId, sessionId: string, workload: string, user: UserRef): Promise<ConsentSessionDocument['state'] | 'expired'> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored) return 'expired';
    const { value } = stored;
    if (value.workload !== workload || value.user.iss !== user.iss || value.user.sub !== user.sub) {
      throw new MandateError('not_found', 'no such consent session for this workload and user');
    }
    return value.state;
  }
}
