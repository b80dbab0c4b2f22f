import { MandateError, type ConsentSessionView, type TenantId, type UserRef } from '@mandate/contracts';
import type { ConsentSessionDocument } from '../store/vault-records.js';

/** Consent sessions live ten minutes and are used once. */
export const CONSENT_SESSION_TTL_MS = 10 * 60_000;

type Held = NonNullable<ConsentSessionDocument['held']>;

/*
 * A consent session, with guarded transitions (each returns the next document; the caller
 * writes it with compare-and-swap, so of two racing moves one wins):
 *
 *   pending ──person approved, signed in here──────────────────────────────▶ completed
 *      │──person approved, session has a return URL──▶ held (tokens sealed)
 *      │                                                │──its application completes it, same user──▶ completed
 *      │                                                └──another user──▶ failed (held tokens dropped)
 *      │──person denied / provider refused ─────────────────────────────────▶ failed
 *      └──10 minutes──▶ expired (reads as gone)
 *
 * The consent pages move it through the vault's endpoints; an agent asking again with its id
 * learns where it stands.
 */
export class ConsentSession {
  constructor(
    readonly id: string,
    readonly document: ConsentSessionDocument,
  ) {}

  get expiresAt(): number {
    return this.document.createdAt + CONSENT_SESSION_TTL_MS;
  }

  remainingMs(now: number): number {
    return Math.max(0, this.expiresAt - now);
  }

  /** `held` is `pending` with the provider's answer waiting for the application. */
  state(now: number): ConsentSessionDocument['state'] | 'held' | 'expired' {
    if (this.expiresAt <= now) return 'expired';
    return this.document.state === 'pending' && this.document.held ? 'held' : this.document.state;
  }

  openedFor(workload: string, user: UserRef): boolean {
    return this.document.workload === workload && sameUser(this.document.user, user);
  }

  /** pending -> held: the provider answered a session with a return URL. */
  hold(held: Held, now: number): ConsentSessionDocument {
    this.#expect(['pending'], now);
    return { ...this.document, held };
  }

  /** pending | held -> completed; what it held goes with it. */
  complete(now: number): ConsentSessionDocument {
    this.#expect(['pending', 'held'], now);
    const { held: _used, ...rest } = this.document;
    return { ...rest, state: 'completed' };
  }

  /** pending | held -> failed; held tokens are dropped. */
  fail(now: number): ConsentSessionDocument {
    this.#expect(['pending', 'held'], now);
    const { held: _dropped, ...rest } = this.document;
    return { ...rest, state: 'failed' };
  }

  view(tenant: TenantId): ConsentSessionView {
    const { document: session } = this;
    return {
      tenant,
      sessionId: this.id,
      workload: session.workload,
      provider: session.provider,
      user: session.user,
      scopes: session.scopes,
      newScopes: session.newScopes ?? session.scopes,
      ...(session.returnUrl ? { returnUrl: session.returnUrl } : {}),
      ...(session.customState ? { customState: session.customState } : {}),
      ...(session.customParameters ? { customParameters: session.customParameters } : {}),
      state: session.state,
      awaitingApplication: session.held !== undefined,
      createdAt: new Date(session.createdAt).toISOString(),
      expiresAt: new Date(this.expiresAt).toISOString(),
      ...(session.traceparent ? { traceparent: session.traceparent } : {}),
    };
  }

  #expect(states: readonly string[], now: number): void {
    const state = this.state(now);
    if (state === 'expired') throw new MandateError('not_found', 'the consent session has expired');
    if (!states.includes(state)) throw new MandateError('conflict', `the consent session is already ${state === 'held' ? 'answered' : state}`);
  }
}

export function sameUser(a: UserRef, b: UserRef): boolean {
  return a.iss === b.iss && a.sub === b.sub;
}
