import { isApproverOf, MandateError, type ApprovalState, type ApprovalView, type TenantId, type UserRef, type VerifiedApprover } from '@mandate/contracts';
import type { MandateLedger } from '../clients/ledger.js';
import type { PolicyApprovals } from '../clients/approvals.js';
import type { SignedInPerson } from './signed-in-person.js';
import type { SignIn } from './sign-in.js';

/** How many requests the list shows: every open one it is given, and the latest decided ones below. */
const OPEN_LIMIT = 100;
const RECENTLY_DECIDED = 20;
export const MAX_COMMENT_LENGTH = 1024;

/** Not signed in (for this tenant): the IdPs to sign in at (none: no sign-in is set up). */
export type SignInFirst = { signInAt: string[] };

export type ApprovalListView = { person: SignedInPerson; open: ApprovalView[]; decided: ApprovalView[] } | SignInFirst;

/**
 * One request as the page shows it: its state as of now (a request past its expiry is expired,
 * whether or not the policy service has swept it yet), and whether this person may decide it.
 */
export type ApprovalPageView = { person: SignedInPerson; approval: ApprovalView; state: ApprovalState; canDecide: boolean } | SignInFirst;

const sameUser = (a: UserRef, b: UserRef) => a.iss === b.iss && a.sub === b.sub;

/** Whether the approval names this person among its approvers: as the user it acts for, or by a group or role they hold at the user's IdP. */
export function isApprover(person: SignedInPerson, approval: ApprovalView): boolean {
  return isApproverOf(approval.approvers, { ...person.user, groups: person.groups, roles: person.roles }, approval.user);
}

/**
 * Who may see a request at all: its approvers, the user the agent acts for (who may want to know
 * what waits on whom) and whoever decided it. Anyone else is told there is no such request, so the
 * page tells nobody what other people's agents do.
 */
export function maySee(person: SignedInPerson, approval: ApprovalView): boolean {
  return isApprover(person, approval) || sameUser(person.user, approval.user) || (approval.decidedBy !== undefined && sameUser(person.user, approval.decidedBy));
}

/** The state a person should read: `requested` past its expiry is `expired`. */
export function stateAsOf(approval: ApprovalView, now: number): ApprovalState {
  return approval.state === 'requested' && Date.parse(approval.expiresAt) <= now ? 'expired' : approval.state;
}

/**
 * The approvals page: the requests a signed-in person may decide, one request read as a person
 * reads it, and deciding it. The person comes from the sign-in (with the groups and roles their ID
 * token held), never from the form; the policy service owns the approvals and has the last word on
 * who may decide. This only decides what the page shows.
 */
export class ApprovalsPage {
  readonly #now: () => number;

  constructor(
    private readonly signIn: SignIn,
    private readonly ledger: MandateLedger,
    private readonly approvals: PolicyApprovals,
    now: () => number = Date.now,
  ) {
    this.#now = now;
  }

  now(): number {
    return this.#now();
  }

  async list(tenant: TenantId, browserId: string | undefined): Promise<ApprovalListView> {
    const person = await this.signIn.person(tenant, browserId);
    if (!person) return { signInAt: await this.ledger.signInIdps(tenant) };
    const approver = approverOf(person);
    const [requested, latest] = await Promise.all([
      this.approvals.decidableBy(tenant, approver, 'requested', OPEN_LIMIT),
      this.approvals.decidableBy(tenant, approver, undefined, RECENTLY_DECIDED + OPEN_LIMIT),
    ]);
    const now = this.#now();
    const open = requested.filter((approval) => stateAsOf(approval, now) === 'requested' && isApprover(person, approval));
    const decided = latest.filter((approval) => stateAsOf(approval, now) !== 'requested' && maySee(person, approval)).slice(0, RECENTLY_DECIDED);
    return { person, open, decided };
  }

  async view(tenant: TenantId, browserId: string | undefined, id: string): Promise<ApprovalPageView> {
    const person = await this.signIn.person(tenant, browserId);
    if (!person) return { signInAt: await this.ledger.signInIdps(tenant) };
    const approval = await this.#visible(tenant, person, id);
    const state = stateAsOf(approval, this.#now());
    return { person, approval, state, canDecide: state === 'requested' && isApprover(person, approval) };
  }

  /**
   * Approves or denies, as the signed-in person. A request they may not see is not found; whether
   * they may decide one they see is the policy service's to say (it refuses, and audits, anyone else).
   */
  async decide(tenant: TenantId, browserId: string | undefined, id: string, decision: 'approve' | 'deny', comment: string | undefined): Promise<ApprovalView> {
    const person = await this.signIn.person(tenant, browserId);
    if (!person) throw new MandateError('unauthenticated', 'sign in to decide', { details: { reason: 'not_signed_in' } });
    const text = comment?.trim();
    if (text && text.length > MAX_COMMENT_LENGTH) throw new MandateError('invalid_request', `a comment has at most ${MAX_COMMENT_LENGTH} characters`);
    await this.#visible(tenant, person, id);
    try {
      return await this.approvals.decide({ tenant, id, decision, comment: text || undefined, approver: approverOf(person) });
    } catch (error) {
      if (error instanceof MandateError && error.code === 'access_denied') throw new MandateError('access_denied', 'not an approver of this request', { cause: error, details: { reason: 'not_an_approver' } });
      if (error instanceof MandateError && error.code === 'conflict') throw new MandateError('conflict', 'this request is no longer open', { cause: error, details: { reason: 'approval_closed' } });
      throw error;
    }
  }

  /** Starts signing in at the tenant's IdP number `choice` (as `list` and `view` give them); back to the approval (or the list) after. */
  async startSignIn(tenant: TenantId, browserId: string, choice: string | null, id: string | undefined): Promise<string> {
    const idps = await this.ledger.signInIdps(tenant);
    const index = choice !== null && /^\d{1,3}$/.test(choice) ? Number(choice) : idps.length === 1 ? 0 : -1;
    const discoveryUrl = idps[index];
    if (!discoveryUrl) throw new MandateError('invalid_request', 'choose where you sign in');
    return this.signIn.start(tenant, discoveryUrl, browserId, `${id ? `/approvals/${id}` : '/approvals'}?tenant=${tenant}`);
  }

  async #visible(tenant: TenantId, person: SignedInPerson, id: string): Promise<ApprovalView> {
    const approval = await this.approvals.get(tenant, id).catch((error: unknown) => {
      if (error instanceof MandateError && error.code === 'not_found') throw new MandateError('not_found', 'no such approval request', { cause: error, details: { reason: 'approval_not_found' } });
      throw error;
    });
    if (!maySee(person, approval)) throw new MandateError('not_found', 'no such approval request', { details: { reason: 'approval_not_found' } });
    return approval;
  }
}

function approverOf(person: SignedInPerson): VerifiedApprover {
  return { iss: person.user.iss, sub: person.user.sub, groups: person.groups, roles: person.roles, ...(person.displayName ? { displayName: person.displayName } : {}) };
}
