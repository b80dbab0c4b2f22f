import { describe, expect, it } from 'vitest';
import { MandateError, tenantId } from '@mandate/contracts';
import type { ConsentSessionDocument } from '../store/vault-records.js';
import { CONSENT_SESSION_TTL_MS, ConsentSession } from './consent-session.js';

const NOW = Date.UTC(2026, 0, 1);
const sarah = { iss: 'https://idp.example', sub: 'sarah' };
const opened: ConsentSessionDocument = { workload: 'report-agent', provider: 'reporting', user: sarah, scopes: ['crm:read'], state: 'pending', createdAt: NOW };
const held = { sealed: 'sealed-tokens', once: false, completionHash: 'h'.repeat(43) };

function refusal(move: () => unknown): string {
  try {
    move();
  } catch (error) {
    if (error instanceof MandateError) return error.code;
    throw error;
  }
  return 'allowed';
}

describe('ConsentSession (guarded transitions, frozen clock)', () => {
  const session = new ConsentSession('s1', opened);

  it('pending: completed once the person approved; completed, it moves no more', () => {
    const completed = new ConsentSession('s1', session.complete(NOW));
    expect(completed.state(NOW)).toBe('completed');
    expect(refusal(() => completed.complete(NOW))).toBe('conflict');
    expect(refusal(() => completed.fail(NOW))).toBe('conflict');
  });

  it('held (a return URL): the provider answered once; completing drops what it held, failing drops it too', () => {
    const holding = new ConsentSession('s1', session.hold(held, NOW));
    expect(holding.state(NOW)).toBe('held');
    expect(holding.view(tenantId('acme')).awaitingApplication).toBe(true);
    expect(refusal(() => holding.hold(held, NOW))).toBe('conflict');
    expect(holding.complete(NOW)).toMatchObject({ state: 'completed' });
    expect(holding.complete(NOW).held).toBeUndefined();
    expect(holding.fail(NOW)).toMatchObject({ state: 'failed' });
    expect(holding.fail(NOW).held).toBeUndefined();
  });

  it('failed moves no more', () => {
    const failed = new ConsentSession('s1', session.fail(NOW));
    expect(refusal(() => failed.complete(NOW))).toBe('conflict');
    expect(refusal(() => failed.hold(held, NOW))).toBe('conflict');
  });

  it('ten minutes on it has expired: every move is not_found', () => {
    const later = NOW + CONSENT_SESSION_TTL_MS;
    expect(session.state(later - 1)).toBe('pending');
    expect(session.state(later)).toBe('expired');
    expect(session.remainingMs(later)).toBe(0);
    expect(refusal(() => session.complete(later))).toBe('not_found');
    expect(refusal(() => session.hold(held, later))).toBe('not_found');
  });

  it('belongs only to the workload and user it was opened for', () => {
    expect(session.openedFor('report-agent', sarah)).toBe(true);
    expect(session.openedFor('report-agent', { ...sarah, sub: 'mallory' })).toBe(false);
    expect(session.openedFor('stranger-agent', sarah)).toBe(false);
  });
});
