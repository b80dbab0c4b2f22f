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

  /** The session, which must be pending, not yet answered by the provider, and opened for this provider and user. */
  async requirePending(tenant: TenantId, sessionId: string, expected: { provider: string; user: UserRef }): Promise<ConsentSessionDocument> {
    const session = await this.get(tenant, sessionId);
    if (session.provider !== expected.provider || !sameUser(session.user, expected.user)) {
      throw new MandateError('not_found', 'no such pending consent session for this provider and user');
    }
    if (session.state !== 'pending' || session.held) throw new MandateError('conflict', `the consent session is already ${session.held ? 'answered' : session.state}`);
    return session;
  }

  /** pending -> failed (the person denied, the provider refused, or the wrong person completed it); held tokens are dropped. */
  fail(tenant: TenantId, sessionId: string): Promise<ConsentSessionDocument> {
    return this.#transition(tenant, sessionId, (session) => {
      const { held: _dropped, ...rest } = session;
      return { ...rest, state: 'failed' };
    });
  }

  /**
   * pending -> completed, for the workload, user and provider it was opened for; anything else
   * (another user's session, one already ended) is refused and changes nothing.
   */
  /** Returns the session as it was just before (with what it held). */
  complete(tenant: TenantId, sessionId: string, expected: { workload: string; provider: string; user: UserRef }): Promise<ConsentSessionDocument> {
    return this.#transition(
      tenant,
      sessionId,
      (session) => {
        const { held: _used, ...rest } = session;
        return { ...rest, state: 'completed' };
      },
      (session) => session.workload === expected.workload && session.provider === expected.provider && sameUser(session.user, expected.user),
    );
  }

  /** The provider answered a session with a return URL: its tokens wait here, sealed, for the application. */
  async hold(tenant: TenantId, sessionId: string, held: NonNullable<ConsentSessionDocument['held']>): Promise<void> {
    await this.#transition(tenant, sessionId, (session) => {
      if (session.held) throw new MandateError('conflict', 'the consent session is already answered');
      return { ...session, held };
    });
  }

  async #transition(
    tenant: TenantId,
    sessionId: string,
    change: (session: ConsentSessionDocument) => ConsentSessionDocument,
    belongs: (session: ConsentSessionDocument) => boolean = () => true,
  ): Promise<ConsentSessionDocument> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored || !belongs(stored.value)) throw new MandateError('not_found', 'no such consent session (it may have expired)');
    const session = stored.value;
    if (session.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.state}`);
    const remainingMs = session.createdAt + CONSENT_SESSION_TTL_MS - this.now();
    if (remainingMs <= 0) throw new MandateError('not_found', 'the consent session has expired');
    await this.sessions.update(tenant, sessionId, change(session), stored.revision, { ttlMs: remainingMs });
    return session;
  }

  /** Where a session stands, for the workload and user it was opened for (anyone else: not found). */
  async status(tenant: TenantId, sessionId: string, workload: string, user: UserRef): Promise<ConsentSessionDocument['state'] | 'expired'> {
    const stored = await this.sessions.get(tenant, sessionId);
    if (!stored) return 'expired';
    const { value } = stored;
    if (value.workload !== workload || !sameUser(value.user, user)) {
      throw new MandateError('not_found', 'no such consent session for this workload and user');
    }
    return value.state;
  }
}

function sameUser(a: UserRef, b: UserRef): boolean {
  return a.iss === b.iss && a.sub === b.sub;
}
