import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MandateError, tenantId, type AuditEntry, type DecisionEntry } from '@mandate/contracts';
import type { ModelTool } from '@mandate/tool-policy';
import type { OpenedDecision } from '../store/decision-log-reader.js';
import { PolicyReplay, replayStart } from './policy-replay.js';

const NOW = Date.parse('2026-12-02T08:00:00Z');
const approve: ModelTool = { name: 'finance___approve_expense', inputSchema: { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] } };
const CANDIDATE = `
@id("finance-under-200")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("200.0")) };
@id("nothing-tiny")
forbid (principal, action, resource) when { context.input.amount.lessThan(decimal("10.0")) };
`;

function recorded(sub: string, amount: number, decision: 'allow' | 'deny', tool = approve.name): OpenedDecision {
  const entry: DecisionEntry = {
    id: randomUUID(),
    tenant: tenantId('acme'),
    gateway: 'finance-gw',
    recordedAt: new Date(NOW - 60_000).toISOString(),
    tool,
    principal: { iss: 'https://idp.example', sub },
    policySet: 'expenses',
    policyVersion: 'hash-1',
    mode: 'enforce',
    decided: { decision, determining: [] },
    sealed: 'sealed',
  };
  return { entry, request: { claims: { groups: [sub === 'bob' ? 'sales' : 'finance'] }, scopes: [], arguments: { amount }, now: NOW - 60_000 } };
}

function replayOver(entries: OpenedDecision[], options: { truncated?: boolean; sliceSize?: number } = {}) {
  const audited: AuditEntry[] = [];
  const windows: Date[] = [];
  const replay = new PolicyReplay({
    decisions: {
      window: async (_tenant, _gateway, since) => {
        windows.push(since);
        return { entries, truncated: options.truncated ?? false, unrecognised: 0 };
      },
    },
    audit: { audit: async (entry) => void audited.push(entry) },
    gatewayTools: async (_tenant, gateway) => {
      if (gateway !== 'finance-gw') throw new MandateError('not_found', `no gateway ${gateway}`);
      return [approve];
    },
    now: () => NOW,
    ...(options.sliceSize ? { sliceSize: options.sliceSize } : {}),
  });
  return { replay, audited, windows };
}

describe('replayStart', () => {
  it('reads a duration back from now or an ISO time, and refuses one in the future or unreadable', () => {
    expect(replayStart('7d', NOW).toISOString()).toBe('2026-11-25T08:00:00.000Z');
    expect(replayStart('12h', NOW).toISOString()).toBe('2026-12-01T20:00:00.000Z');
    expect(replayStart('90m', NOW).toISOString()).toBe('2026-12-02T06:30:00.000Z');
    expect(replayStart('2026-12-01T00:00:00+01:00', NOW).toISOString()).toBe('2026-11-30T23:00:00.000Z');
    expect(() => replayStart('2026-12-03T00:00:00Z', NOW)).toThrow(/in the future/);
    expect(() => replayStart('soon', NOW)).toThrow(MandateError);
  });
});

describe('PolicyReplay', () => {
  const entries = [recorded('sarah', 5, 'allow'), recorded('sarah', 150, 'deny'), recorded('sarah', 50, 'allow'), recorded('bob', 20, 'deny'), recorded('sarah', 1, 'allow', 'petty___approve_expense'), { entry: recorded('sarah', 1, 'allow').entry, unreadable: 'unknown_key' as const }];

  it('counts what changes both ways, groups it by tool and principal with sample ids, and says what it skipped and why', async () => {
    const { replay, audited, windows } = replayOver(entries);
    const answer = await replay.replay(tenantId('acme'), 'finance-gw', '1d', CANDIDATE, 'security@acme');
    expect(windows).toEqual([new Date(NOW - 86_400_000)]);
    expect(answer).toEqual({
      gateway: 'finance-gw',
      from: '2026-12-01T08:00:00.000Z',
      to: '2026-12-02T08:00:00.000Z',
      evaluated: 4,
      unchanged: 2,
      changed: { allowedToDenied: 1, deniedToAllowed: 1 },
      skipped: { tool_removed: 1, unreadable: 1 },
      groups: [{ tool: approve.name, principal: { iss: 'https://idp.example', sub: 'sarah' }, allowedToDenied: 1, deniedToAllowed: 1, samples: [entries[0]!.entry.id, entries[1]!.entry.id] }],
      truncated: false,
    });
    expect(audited).toEqual([expect.objectContaining({ action: 'policy-replay', actor: { admin: 'security@acme' }, details: expect.objectContaining({ gateway: 'finance-gw', evaluated: 4, allowedToDenied: 1, deniedToAllowed: 1 }) as unknown })]);
  });

  it('answers the same in slices of any size, and says where a truncated window stopped', async () => {
    const whole = await replayOver(entries).replay.replay(tenantId('acme'), 'finance-gw', '1d', CANDIDATE, undefined);
    expect(await replayOver(entries, { sliceSize: 1 }).replay.replay(tenantId('acme'), 'finance-gw', '1d', CANDIDATE, undefined)).toEqual(whole);
    const truncated = await replayOver(entries, { truncated: true }).replay.replay(tenantId('acme'), 'finance-gw', '1d', CANDIDATE, undefined);
    expect(truncated).toMatchObject({ truncated: true, to: entries.at(-1)!.entry.recordedAt });
  });

  it('refuses a candidate that does not parse or validate, an unknown gateway and a window in the future, reading nothing', async () => {
    const { replay, windows, audited } = replayOver(entries);
    const refusal = (work: Promise<unknown>) => work.then(() => undefined, (e: unknown) => e as MandateError);
    expect((await refusal(replay.replay(tenantId('acme'), 'finance-gw', '1d', 'permit (', undefined)))?.code).toBe('invalid_request');
    expect((await refusal(replay.replay(tenantId('acme'), 'finance-gw', '1d', 'permit (principal, action == Mandate::Action::"gone", resource);', undefined)))?.code).toBe('invalid_request');
    expect((await refusal(replay.replay(tenantId('acme'), 'nope', '1d', CANDIDATE, undefined)))?.code).toBe('not_found');
    expect((await refusal(replay.replay(tenantId('acme'), 'finance-gw', '2027-01-01T00:00:00Z', CANDIDATE, undefined)))?.code).toBe('invalid_request');
    expect(windows).toEqual([]);
    expect(audited).toEqual([]);
  });
});
