import { isApproverOf, MandateError, type ApprovalState, type ApprovalView, type TenantId, type VerifiedApprover } from '@mandate/contracts';

/** An approval as stored: its view without the tenant (the store's partition says it). */
export type ApprovalDocument = Omit<ApprovalView, 'tenant'> & {
  /** Expired, and the expiry not yet audited and announced: written with the expiry, cleared once the journal has it (CurrentApprovals). */
  expiryUnannounced?: true;
};

/**
 * One held tool call waiting for a person, with guarded transitions. Each transition returns the
 * next document; the caller writes it only if the revision it read is still current
 * (compare-and-swap), so two racing calls with the same digest consume one approval once and two
 * approvers cannot both decide.
 *
 *                 (opened by the gateway for a call policy permits only with approval)
 *                                  │
 *                                  ▼
 *                             requested ──approve (an allowed approver)──▶ approved ──consume (once)──▶ consumed (final)
 *                                  │                                         │
 *                                  ├──deny (an allowed approver)──▶ denied (final)
 *                                  │                                         │
 *                                  └──past expiresAt──▶ expired (final) ◀──past expiresAt (not consumed)
 *
 * Expiry is lazy: whoever reads an approval past `expiresAt` (get, status, list, consume, decide)
 * moves it to `expired` first, so nothing is ever approved or consumed late, whether or not a sweep
 * ran. The expiry is written with a mark that it is not yet announced, cleared once its audit
 * record and event are out, so a failure in between is made good by the expiry sweep.
 */
export class Approval {
  static readonly FINAL: ReadonlySet<ApprovalState> = new Set(['denied', 'expired', 'consumed']);

  constructor(
    readonly tenant: TenantId,
    readonly document: ApprovalDocument,
    readonly revision: number,
  ) {}

  get id(): string {
    return this.document.id;
  }

  get state(): ApprovalState {
    return this.document.state;
  }

  get final(): boolean {
    return Approval.FINAL.has(this.state);
  }

  /** Still usable for its call: waiting for a decision, or approved and not yet used. */
  open(now: number): boolean {
    return (this.state === 'requested' || this.state === 'approved') && !this.lapsed(now);
  }

  /** Past its expiry without having reached an end. */
  lapsed(now: number): boolean {
    return !this.final && now >= Date.parse(this.document.expiresAt);
  }

  /** Whether this person may decide it: the user themself, or a holder of one of the named groups or roles. */
  decidableBy(person: VerifiedApprover): boolean {
    return isApproverOf(this.document.approvers, person, this.document.user);
  }

  approve(person: VerifiedApprover, now: number, comment: string | undefined): ApprovalDocument {
    return this.#decide('approved', person, now, comment);
  }

  deny(person: VerifiedApprover, now: number, comment: string | undefined): ApprovalDocument {
    return this.#decide('denied', person, now, comment);
  }

  /** The single use of an approved approval, by the identical call. */
  consume(now: number): ApprovalDocument {
    if (this.lapsed(now)) throw new MandateError('conflict', `approval ${this.id} has expired`);
    if (this.state !== 'approved') throw new MandateError('conflict', `approval ${this.id} is ${this.state}, not approved`);
    return { ...this.document, state: 'consumed', consumedAt: iso(now) };
  }

  /** Whether its expiry still waits to be audited and announced. */
  get expiryUnannounced(): boolean {
    return this.document.expiryUnannounced === true;
  }

  expire(now: number): ApprovalDocument {
    if (!this.lapsed(now)) throw new TypeError(`approval ${this.id} is ${this.state} and not past its expiry`);
    return { ...this.document, state: 'expired', expiryUnannounced: true };
  }

  /** The document once its expiry is audited and announced. */
  announced(): ApprovalDocument {
    const { expiryUnannounced: _, ...document } = this.document;
    return document;
  }

  view(): ApprovalView {
    return { tenant: this.tenant, ...this.announced() };
  }

  #decide(state: 'approved' | 'denied', person: VerifiedApprover, now: number, comment: string | undefined): ApprovalDocument {
    if (this.lapsed(now)) throw new MandateError('conflict', `approval ${this.id} has expired`);
    if (this.state !== 'requested') throw new MandateError('conflict', `approval ${this.id} is already ${this.state}`);
    if (!this.decidableBy(person)) throw new MandateError('access_denied', `this person may not decide approval ${this.id}`);
    return {
      ...this.document,
      state,
      decidedAt: iso(now),
      decidedBy: { iss: person.iss, sub: person.sub, ...(person.displayName ? { displayName: person.displayName } : {}) },
      ...(comment ? { comment } : {}),
    };
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
