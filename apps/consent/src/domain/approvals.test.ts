import { describe, expect, it } from 'vitest';
import type { ApprovalView } from '@mandate/contracts';
import { relativeTime } from '../http/approval-pages.js';
import { isApprover, maySee, stateAsOf } from './approvals.js';
import { membershipsOf, personOf, type SignedInPerson } from './signed-in-person.js';

const IDP = 'https://login.acme.example';
const NOW = Date.parse('2026-12-02T08:00:00Z');

const approval = (overrides: Partial<ApprovalView> = {}): ApprovalView => ({
  tenant: 'acme' as ApprovalView['tenant'],
  id: `apr_${'a'.repeat(22)}`,
  state: 'requested',
  gateway: 'finance-gw',
  tool: 'finance___submit_expense',
  target: 'finance',
  toolTitle: 'Submit an expense',
  arguments: [{ name: 'amount', title: 'Amount', value: '250' }],
  user: { iss: IDP, sub: 'sarah' },
  agent: 'expense-agent',
  approvers: [{ kind: 'group', name: 'finance' }],
  bindingMessage: 'Expense of 250 for sarah',
  digest: 'd',
  policy: { name: 'expenses', version: '1', determining: [] },
  requestedAt: '2026-12-02T07:55:00.000Z',
  expiresAt: '2026-12-02T08:05:00.000Z',
  ...overrides,
});

const person = (sub: string, groups: string[] = [], roles: string[] = []): SignedInPerson => ({ user: { iss: IDP, sub }, groups, roles });

describe('the signed-in person from the ID token', () => {
  it('keeps the user, groups, roles and a name to show, and nothing else of the token', () => {
    const claims = { iss: IDP, sub: 'bob', aud: 'mandate-consent', nonce: 'n', name: 'Bob Example', email: 'bob@acme.example', groups: ['finance', 'finance', 'staff'], roles: 'approver' };
    expect(personOf(claims)).toEqual({ user: { iss: IDP, sub: 'bob' }, groups: ['finance', 'staff'], roles: ['approver'], displayName: 'Bob Example' });
    expect(personOf({ iss: IDP, sub: 'x', email: 'x@acme.example' }).displayName).toBe('x@acme.example');
    expect(personOf({ iss: IDP, sub: 'y' })).toEqual({ user: { iss: IDP, sub: 'y' }, groups: [], roles: [] });
  });

  it('reads no membership from claims of another shape, and leaves out names too long to pass on rather than cutting them', () => {
    expect(membershipsOf({ _claim_names: { groups: 'src1' } })).toEqual([]);
    expect(membershipsOf([1, null, '', 'ok', 'g'.repeat(257)])).toEqual(['ok']);
    expect(membershipsOf(Array.from({ length: 300 }, (_, i) => `g${i}`))).toHaveLength(256);
  });
});

describe('who may decide and who may see a request', () => {
  it('a holder of the approvers’ group decides; the user it acts for sees it but does not decide; anyone else sees nothing', () => {
    const expense = approval();
    expect(isApprover(person('bob', ['finance']), expense)).toBe(true);
    expect([isApprover(person('sarah', ['sales']), expense), maySee(person('sarah', ['sales']), expense)]).toEqual([false, true]);
    expect(maySee(person('mallory', ['sales']), expense)).toBe(false);
    // The same sub at another IdP is another person.
    expect(maySee({ user: { iss: 'https://other.example', sub: 'sarah' }, groups: [], roles: [] }, expense)).toBe(false);
    // A group of the same name at another IdP of the tenant (a partner's) is someone else's group: not shown, not decided.
    const partner = { user: { iss: 'https://partner.example', sub: 'bob' }, groups: ['finance'], roles: ['cfo'] };
    expect([isApprover(partner, expense), maySee(partner, expense)]).toEqual([false, false]);
    expect(isApprover(partner, approval({ approvers: [{ kind: 'role', name: 'cfo' }] }))).toBe(false);
  });

  it('roles and the user themself as approvers; whoever decided still sees it', () => {
    expect(isApprover(person('carol', [], ['cfo']), approval({ approvers: [{ kind: 'role', name: 'cfo' }] }))).toBe(true);
    expect(isApprover(person('carol', ['cfo']), approval({ approvers: [{ kind: 'role', name: 'cfo' }] }))).toBe(false);
    expect(isApprover(person('sarah'), approval({ approvers: [{ kind: 'user' }] }))).toBe(true);
    expect(maySee(person('dave'), approval({ state: 'approved', decidedBy: { iss: IDP, sub: 'dave' } }))).toBe(true);
  });

  it('a request past its expiry reads as expired, whether or not the policy service swept it', () => {
    expect(stateAsOf(approval(), NOW)).toBe('requested');
    expect(stateAsOf(approval(), Date.parse('2026-12-02T08:05:00Z'))).toBe('expired');
    expect(stateAsOf(approval({ state: 'approved' }), Date.parse('2026-12-03T00:00:00Z'))).toBe('approved');
  });
});

describe('relative times', () => {
  it.each([
    ['2026-12-02T08:00:30Z', 'in less than a minute'],
    ['2026-12-02T08:09:59Z', 'in 9 minutes'],
    ['2026-12-02T09:00:00Z', 'in 1 hour'],
    ['2026-12-04T08:00:00Z', 'in 2 days'],
    ['2026-12-02T07:59:45Z', 'less than a minute ago'],
    ['2026-12-02T07:55:00Z', '5 minutes ago'],
  ])('%s is %s', (iso, text) => expect(relativeTime(iso, NOW)).toBe(text));
});
