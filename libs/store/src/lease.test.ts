import { describe, expect, it } from 'vitest';
import { MandateError } from '@mandate/contracts';
import { Lease } from './lease.js';

const NOW = Date.UTC(2026, 0, 1);
const TTL = 1_000;

function refusal(move: () => unknown): string {
  try {
    move();
  } catch (error) {
    if (error instanceof MandateError) return error.code;
    throw error;
  }
  return 'allowed';
}

describe('Lease (guarded transitions, frozen clock)', () => {
  const free = new Lease(undefined);
  const heldByA = new Lease(free.acquire('a', NOW, TTL));

  it('free: anyone acquires it, for the time asked', () => {
    expect(free.state(NOW)).toBe('free');
    expect(free.acquire('a', NOW, TTL)).toEqual({ holder: 'a', until: NOW + TTL });
    expect(free.remainingMs('a', NOW)).toBe(0);
  });

  it('held: only its holder acquires or renews it; another is refused with conflict', () => {
    expect(heldByA.state(NOW + TTL - 1)).toBe('held');
    expect(heldByA.heldBy('a', NOW)).toBe(true);
    expect(heldByA.heldBy('b', NOW)).toBe(false);
    expect(heldByA.remainingMs('a', NOW + 400)).toBe(TTL - 400);
    expect(refusal(() => heldByA.acquire('b', NOW + 1, TTL))).toBe('conflict');
    expect(refusal(() => heldByA.renew('b', NOW + 1, TTL))).toBe('conflict');
    expect(heldByA.acquire('a', NOW + 1, TTL)).toEqual({ holder: 'a', until: NOW + 1 + TTL });
    expect(heldByA.renew('a', NOW + 500, TTL)).toEqual({ holder: 'a', until: NOW + 500 + TTL });
  });

  it('expired: taken over by anyone; its old holder can no longer renew it', () => {
    const at = NOW + TTL;
    expect(heldByA.state(at)).toBe('expired');
    expect(heldByA.heldBy('a', at)).toBe(false);
    expect(heldByA.acquire('b', at, TTL)).toEqual({ holder: 'b', until: at + TTL });
    expect(refusal(() => heldByA.renew('a', at, TTL))).toBe('conflict');
  });

  it('release: only by its holder', () => {
    expect(heldByA.release('a')).toBeUndefined();
    expect(free.release('anyone')).toBeUndefined();
    expect(refusal(() => heldByA.release('b'))).toBe('conflict');
  });
});
