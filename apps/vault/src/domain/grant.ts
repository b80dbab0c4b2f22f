import type { GrantView, UserRef } from '@mandate/contracts';
import type { Change } from '@mandate/store';
import type { GrantDocument } from '../store/vault-records.js';

/** How long an approval lasts: until `expiresAt`, or until revoked; `once` is kept as a grant of its own. */
export interface GrantTerms {
  expiresAt?: number | undefined;
  once?: boolean;
}

/*
 * A consent grant: a person's permission for one workload to use one provider with some scopes,
 * each scope with its own term (epoch ms, or null until revoked):
 *
 *   (none) ──approve(scopes, term)──▶ live ──approve(more scopes or a new term)──▶ live
 *                                      │──every term passes──▶ lapsed (reads as none; the store's TTL removes it)
 *                                      └──revoke / "this time only" used up──▶ (none)
 *
 * Pure: `approve` returns the document to write (with the store TTL of its last term).
 */
export class Grant {
  constructor(
    readonly document: GrantDocument | undefined,
    private readonly now: number,
  ) {}

  /** The scopes whose term has not run out. */
  liveTerms(): Record<string, number | null> {
    if (!this.document) return {};
    return Object.fromEntries(Object.entries(this.document.scopeTerms).filter(([, until]) => until === null || until > this.now));
  }

  /** Of `scopes`, those this grant does not cover now. */
  missing(scopes: readonly string[]): string[] {
    const live = this.liveTerms();
    return scopes.filter((scope) => !(scope in live));
  }

  /** The scopes asked about get this term, replacing their earlier one; the other live scopes keep theirs. */
  approve(subject: { workload: string; provider: string; user: UserRef }, scopes: readonly string[], terms: GrantTerms): NonNullable<Change<GrantDocument>> {
    const scopeTerms = this.liveTerms();
    for (const scope of scopes) scopeTerms[scope] = terms.expiresAt ?? null;
    const value: GrantDocument = { ...subject, scopeTerms, grantedAt: this.now, ...(terms.once ? { once: true } : {}) };
    // The document lapses with its last term, so the store's sweep removes grants nobody holds any more.
    const ends = Object.values(scopeTerms);
    return ends.length === 0 || ends.includes(null) ? { value } : { value, options: { ttlMs: Math.max(1, Math.max(...(ends as number[])) - this.now) } };
  }

  /** As `grant-list` shows it; undefined once no scope is live. */
  view(): GrantView | undefined {
    const grant = this.document;
    const terms = this.liveTerms();
    const scopes = Object.keys(terms).sort();
    if (!grant || scopes.length === 0) return undefined;
    const ends = Object.values(terms);
    return {
      workload: grant.workload,
      provider: grant.provider,
      user: grant.user,
      scopes,
      scopeTerms: Object.fromEntries(scopes.map((scope) => [scope, terms[scope] === null ? null : new Date(terms[scope]!).toISOString()])),
      grantedAt: new Date(grant.grantedAt).toISOString(),
      ...(ends.includes(null) ? {} : { expiresAt: new Date(Math.max(...(ends as number[]))).toISOString() }),
      once: grant.once === true,
    };
  }
}
