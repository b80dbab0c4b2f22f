import { describe, expect, it } from 'vitest';
import { IntakeWindow } from './intake-window.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function watched(limit: number, unacknowledged: () => Promise<number>) {
  const state = { inHand: 0, flushes: 0, asked: 0 };
  const window = new IntakeWindow({
    limit,
    inHand: () => state.inHand,
    flush: () => void (state.flushes += 1),
    unacknowledged: () => {
      state.asked += 1;
      return unacknowledged();
    },
  });
  return { window, state };
}

describe('IntakeWindow: when the intake can deliver no more, waiting batches go', () => {
  it('flushes on the delivery that brings this replica to half the limit, not before', () => {
    const { window, state } = watched(8, async () => 0);
    for (state.inHand = 1; state.inHand < 4; state.inHand += 1) window.delivered();
    expect(state.flushes).toBe(0);
    window.delivered();
    expect(state.flushes).toBe(1);
  });

  it('once deliveries pause, asks the consumer: flushes when every replica together holds the limit (another replica has the rest)', async () => {
    let unacknowledged = 8;
    const { window, state } = watched(8, async () => unacknowledged);
    window.start();
    try {
      state.inHand = 2;
      window.delivered();
      await sleep(150);
      expect(state.flushes).toBeGreaterThanOrEqual(1);
      // A low rate pauses too: with the window not full nothing is flushed, and the consumer is asked at most every 200 ms.
      unacknowledged = 2;
      const flushed = state.flushes;
      const asked = state.asked;
      await sleep(450);
      expect(state.flushes).toBe(flushed);
      expect(state.asked - asked).toBeLessThanOrEqual(3);
      expect(state.asked - asked).toBeGreaterThanOrEqual(1);
    } finally {
      window.stop();
    }
  });

  it('asks nothing while nothing is in hand, and a failed question flushes nothing', async () => {
    const { window, state } = watched(8, () => Promise.reject(new Error('bus away')));
    window.start();
    try {
      await sleep(100);
      expect(state.asked).toBe(0);
      state.inHand = 1;
      window.delivered();
      await sleep(150);
      expect(state.asked).toBe(1);
      expect(state.flushes).toBe(0);
    } finally {
      window.stop();
    }
  });
});
