import { describe, expect, it } from 'vitest';
import { MandateError, type TenantId, type VerifiedApprover } from '@mandate/contracts';
import { Approval, type ApprovalDocument } from './approval.js';

const NOW = Date.UTC(2026, 0, 1, 9, 0);
const TTL = 15 * 60_000;
const tenant = 'acme' as TenantId;
const sarah = { iss: 'https://idp.example', sub: 'sarah' };
const requested: ApprovalDocument = {
  id: 'apr_0000000000aaaaaaaaaaaaaaaaaaaaaa',
  state: 'requested',
  gateway: 'finance-gw',
  tool: 'finance___approve_expense',
  target: 'finance',
  toolTitle: 'Approve expense',
  arguments: [{ name: 'amount', title: 'Amount', value: '250' }],
  user: sarah,
  approvers: [{ kind: 'group', name: 'finance-managers' }],
  bindingMessage: 'Approve expense on finance for sarah: Amount 250',
  digest: 'd'.repeat(43),
  policy: { name: 'expenses', version: 'v1', determining: ['managers-approve'] },
  requestedAt: new Date(NOW).toISOString(),
  expiresAt: new Date(NOW + TTL).toISOString(),
};
const manager: VerifiedApprover = { iss: 'https://idp.example', sub: 'maria', groups: ['finance-managers'], roles: [], displayName: 'Maria' };
const bob: VerifiedApprover = { iss: 'https://idp.example', sub: 'bob', groups: ['sales'], roles: ['manager'] };

function refusal(move: () => unknown): string {
  try {
    move();
  } catch (error) {
    return error instanceof MandateError ? error.code : (error as Error).name;
  }
  return 'allowed';
}

const at = (document: ApprovalDocument) => new Approval(tenant, document, 1);

describe('Approval (guarded transitions, frozen clock)', () => {
  it('requested: open until its expiry; an allowed approver approves it, with who and the comment', () => {
    const approval = at(requested);
    expect(approval.open(NOW)).toBe(true);
    expect(approval.open(NOW + TTL)).toBe(false);
    const approved = approval.approve(manager, NOW + 1000, 'ok for the offsite');
    expect(approved).toMatchObject({ state: 'approved', decidedAt: new Date(NOW + 1000).toISOString(), decidedBy: { sub: 'maria', displayName: 'Maria' }, comment: 'ok for the offsite' });
  });

  it('requested: an allowed approver denies it; a comment is optional', () => {
    const denied = at(requested).deny(manager, NOW, undefined);
    expect(denied.state).toBe('denied');
    expect(denied).not.toHaveProperty('comment');
  });

  it('only an allowed approver decides: the group or role named, or the user themself for kind user', () => {
    expect(refusal(() => at(requested).approve(bob, NOW, undefined))).toBe('access_denied');
    expect(refusal(() => at(requested).approve({ ...sarah, groups: [], roles: [] }, NOW, undefined))).toBe('access_denied');
    const byRole = at({ ...requested, approvers: [{ kind: 'role', name: 'manager' }] });
    expect(byRole.decidableBy(bob)).toBe(true);
    expect(byRole.decidableBy(manager)).toBe(false);
    // The same group or role name from another IdP of the tenant is someone else's.
    expect(at(requested).decidableBy(manager)).toBe(true);
    expect(at(requested).decidableBy({ ...manager, iss: 'https://partner-idp.example' })).toBe(false);
    expect(byRole.decidableBy({ ...bob, iss: 'https://partner-idp.example' })).toBe(false);
    const byUser = at({ ...requested, approvers: [{ kind: 'user' }] });
    expect(byUser.decidableBy({ ...sarah, groups: [], roles: [] })).toBe(true);
    expect(byUser.decidableBy({ iss: 'https://other.example', sub: 'sarah', groups: [], roles: [] })).toBe(false);
    expect(byUser.decidableBy(manager)).toBe(false);
  });

  it('approved: consumed once by the identical call; nothing decides it again', () => {
    const approved = new Approval(tenant, at(requested).approve(manager, NOW, undefined), 2);
    expect(approved.open(NOW)).toBe(true);
    const consumed = new Approval(tenant, approved.consume(NOW + 1), 3);
    expect(consumed.document).toMatchObject({ state: 'consumed', consumedAt: new Date(NOW + 1).toISOString() });
    expect(consumed.final).toBe(true);
    expect(consumed.open(NOW)).toBe(false);
    expect(refusal(() => consumed.consume(NOW + 2))).toBe('conflict');
    expect(refusal(() => approved.approve(manager, NOW, undefined))).toBe('conflict');
    expect(refusal(() => approved.deny(manager, NOW, undefined))).toBe('conflict');
  });

  it('requested or denied cannot be consumed; denied is final', () => {
    expect(refusal(() => at(requested).consume(NOW))).toBe('conflict');
    const denied = at(at(requested).deny(manager, NOW, undefined));
    expect(denied.final).toBe(true);
    expect(refusal(() => denied.consume(NOW))).toBe('conflict');
    expect(refusal(() => denied.approve(manager, NOW, undefined))).toBe('conflict');
    expect(denied.lapsed(NOW + TTL)).toBe(false);
  });

  it('past expiresAt: requested and approved lapse and expire; nothing approves or consumes late', () => {
    const late = NOW + TTL;
    expect(refusal(() => at(requested).approve(manager, late, undefined))).toBe('conflict');
    const approved = at(at(requested).approve(manager, NOW, undefined));
    expect(approved.lapsed(late - 1)).toBe(false);
    expect(approved.lapsed(late)).toBe(true);
    expect(refusal(() => approved.consume(late))).toBe('conflict');
    expect(approved.expire(late).state).toBe('expired');
    expect(at(requested).expire(late).state).toBe('expired');
    expect(at(approved.expire(late)).final).toBe(true);
  });

  it('expire before expiresAt, or of a final approval, is a programming mistake', () => {
    expect(refusal(() => at(requested).expire(NOW))).toBe('TypeError');
    const consumed = at(at(at(requested).approve(manager, NOW, undefined)).consume(NOW));
    expect(refusal(() => consumed.expire(NOW + TTL))).toBe('TypeError');
  });

  it('its view carries the tenant', () => {
    expect(at(requested).view()).toMatchObject({ tenant: 'acme', id: requested.id, state: 'requested' });
  });
});
