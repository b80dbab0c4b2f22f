import { randomBytes } from 'node:crypto';
import { MandateError, type ConsentSessionView, type TenantId, type UserRef } from '@mandate/contracts';
import type { ConsentSessionRepository } from '../store/repositories.js';
import type { ConsentSessionDocument } from '../store/vault-records.js';
import { CONSENT_SESSION_TTL_MS, ConsentSession, sameUser } from './consent-session.js';

/** Consent sessions as stored: opened by a token release, moved on by the consent pages and the application. */
export class ConsentSessions {
  constructor(
    private readonly sessions: ConsentSessionRepository,
    private readonly consentBaseUrl: string,
    private readonly now: () => number = Date.now,
  ) {}

  async open(tenant: TenantId, session: Omit<ConsentSessionDocument, 'state' | 'createdAt'>): Promise<{ sessionId: string; authorizationUrl: string }> {
    const sessionId = randomBytes(24).toString('base64url');
    await this.sessions.create(tenant, sessionId, { ...session, state: 'pending', createdAt: this.now() }, CONSENT_SESSION_TTL_MS);
    return { sessionId, authorizationUrl: `${this.consentBaseUrl.replace(/\/$/, '')}/consent/${sessionId}?tenant=${tenant}` };
  }

  /** A live session (expired or unknown: not_found). */
  async get(tenant: TenantId, sessionId: string): Promise<ConsentSession> {
    const stored = await this.sessions.get(tenant, sessionId);
    const session = stored && new ConsentSession(sessionId, stored.value);
    if (!session || session.state(this.now()) === 'expired') throw new MandateError('not_found', 'no such consent session (it may have expired)');
    return session;
  }

  /** As the consent pages (and anyone with its id) read it. */
  async view(tenant: TenantId, sessionId: string): Promise<ConsentSessionView> {
    return (await this.get(tenant, sessionId)).view(tenant);
  }

  /** Where a session stands, for the workload and user it was opened for (anyone else: not found). */
  async status(tenant: TenantId, sessionId: string, workload: string, user: UserRef): Promise<ConsentSessionDocument['state'] | 'expired'> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored) return 'expired';
    if (!new ConsentSession(sessionId, stored.value).openedFor(workload, user)) throw new MandateError('not_found', 'no such consent session for this workload and user');
    return stored.value.state;
  }

  /**
   * Moves a session on (compare-and-swap: of two racing moves, one wins; the other gets
   * `conflict`), if `belongs`; returns it as it was just before (with what it held).
   */
  async transition(
    tenant: TenantId,
    sessionId: string,
    move: (session: ConsentSession, now: number) => ConsentSessionDocument,
    belongs: (session: ConsentSessionDocument) => boolean = () => true,
  ): Promise<ConsentSession> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored || !belongs(stored.value)) throw new MandateError('not_found', 'no such consent session (it may have expired)');
    const session = new ConsentSession(sessionId, stored.value);
    const now = this.now();
    await this.sessions.update(tenant, sessionId, move(session, now), stored.revision, Math.max(1, session.remainingMs(now)));
    return session;
  }

  /** The session, which must be pending, not yet answered by the provider, and opened for this provider and user. */
  async requirePending(tenant: TenantId, sessionId: string, expected: { provider: string; user: UserRef }): Promise<ConsentSession> {
    const session = await this.get(tenant, sessionId);
    if (session.document.provider !== expected.provider || !sameUser(session.document.user, expected.user)) {
      throw new MandateError('not_found', 'no such pending consent session for this provider and user');
    }
    const state = session.state(this.now());
    if (state !== 'pending') throw new MandateError('conflict', `the consent session is already ${state === 'held' ? 'answered' : state}`);
    return session;
  }
}
