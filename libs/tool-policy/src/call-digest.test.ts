import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { approvalDigest, callDigest } from './call-digest.js';

const call = { tenant: 't1', user: { iss: 'https://idp', sub: 'sarah' }, agent: 'expenses-agent', gateway: 'finance', tool: 'erp___approve_expense', arguments: { amount: 50, note: 'taxi' } };

describe('callDigest', () => {
  it('is the SHA-256 of the RFC 8785 canonical form, whatever order the members came in', () => {
    const reordered = { arguments: { note: 'taxi', amount: 50 }, tool: call.tool, gateway: 'finance', agent: 'expenses-agent', user: { sub: 'sarah', iss: 'https://idp' }, tenant: 't1' };
    expect(callDigest(reordered)).toBe(callDigest(call));
    // Written out by hand: what a target in another language computes.
    const canonical = '{"agent":"expenses-agent","arguments":{"amount":50,"note":"taxi"},"gateway":"finance","tenant":"t1","tool":"erp___approve_expense","user":{"iss":"https://idp","sub":"sarah"}}';
    expect(callDigest(call)).toBe(createHash('sha256').update(canonical).digest('base64url'));
  });

  it('changes with any argument, the principal, the agent, the tool, the gateway or the tenant', () => {
    const digests = new Set([
      callDigest(call),
      callDigest({ ...call, arguments: { amount: 50.5, note: 'taxi' } }),
      callDigest({ ...call, arguments: { amount: 50 } }),
      callDigest({ ...call, user: { iss: 'https://idp', sub: 'bob' } }),
      callDigest({ ...call, agent: 'other-agent' }),
      callDigest({ ...call, agent: undefined }),
      callDigest({ ...call, tool: 'erp___pay' }),
      callDigest({ ...call, gateway: 'sales' }),
      callDigest({ ...call, tenant: 't2' }),
    ]);
    expect(digests.size).toBe(9);
  });
});

describe('approvalDigest', () => {
  it('binds the call to who may approve it, in any order; other approvers give another digest', () => {
    const digest = callDigest(call);
    const managers = approvalDigest(digest, [{ kind: 'group', name: 'finance-managers' }, { kind: 'user' }]);
    expect(approvalDigest(digest, [{ kind: 'user' }, { kind: 'group', name: 'finance-managers' }])).toBe(managers);
    expect(approvalDigest(digest, [{ kind: 'group', name: 'cfo' }])).not.toBe(managers);
    expect(approvalDigest(digest, [{ kind: 'user' }])).not.toBe(managers);
    expect(approvalDigest(callDigest({ ...call, arguments: { amount: 51, note: 'taxi' } }), [{ kind: 'group', name: 'finance-managers' }, { kind: 'user' }])).not.toBe(managers);
  });

  it('binds the target: another target of the name, or the same one removed and added again, gives another digest', () => {
    const digest = callDigest(call);
    const approvers = [{ kind: 'user' }] as const;
    const first = approvalDigest(digest, approvers, { name: 'finance', addedAt: '2026-12-01T10:00:00.000Z' });
    expect(approvalDigest(digest, approvers, { name: 'finance', addedAt: '2026-12-01T10:00:00.000Z' })).toBe(first);
    expect(approvalDigest(digest, approvers, { name: 'finance', addedAt: '2026-12-07T09:00:00.000Z' })).not.toBe(first);
    expect(approvalDigest(digest, approvers, { name: 'payments', addedAt: '2026-12-01T10:00:00.000Z' })).not.toBe(first);
    // A target added before its time was kept is bound by its name alone, and still apart from the others.
    expect(approvalDigest(digest, approvers, { name: 'finance' })).not.toBe(first);
    expect(approvalDigest(digest, approvers, { name: 'finance', addedAt: undefined })).toBe(approvalDigest(digest, approvers, { name: 'finance' }));
  });
});
