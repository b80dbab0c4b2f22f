import { describe, expect, it } from 'vitest';
import { RecentRecords } from './recent-records.js';

describe('RecentRecords', () => {
  it('finds a learnt record by id until its window is over, then forgets it', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(1, ['a', 'b'], 0);
    recent.learn(3, ['c'], 500);
    expect([recent.sequenceOf('a'), recent.sequenceOf('b'), recent.sequenceOf('c'), recent.sequenceOf('d')]).toEqual([1, 2, 3, undefined]);
    recent.expire(1_000);
    expect(recent.sequenceOf('a')).toBe(1);
    recent.expire(1_001);
    expect([recent.sequenceOf('a'), recent.sequenceOf('b'), recent.sequenceOf('c')]).toEqual([undefined, undefined, 3]);
    expect(recent.size).toBe(1);
    expect(recent.last).toBe(3);
    recent.expire(1_501);
    expect(recent.size).toBe(0);
    expect(recent.last).toBe(0);
  });

  it('unlearns what follows a sequence, cutting a run in two where it falls', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(1, ['a', 'b', 'c'], 0);
    recent.learn(4, ['d', 'e'], 0);
    recent.unlearnAfter(2);
    expect([recent.sequenceOf('a'), recent.sequenceOf('b'), recent.sequenceOf('c'), recent.sequenceOf('d'), recent.sequenceOf('e')]).toEqual([1, 2, undefined, undefined, undefined]);
    expect(recent.last).toBe(2);
    recent.learn(3, ['x'], 0);
    expect(recent.sequenceOf('x')).toBe(3);
    recent.unlearnAfter(0);
    expect(recent.size).toBe(0);
  });

  it('refuses entries that are not after every one it holds', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(5, ['a', 'b'], 0);
    expect(() => recent.learn(6, ['c'], 0)).toThrow(RangeError);
    recent.learn(9, ['c'], 0);
    expect(recent.last).toBe(9);
  });

  it('a record the chain holds twice (chained again after it was forgotten) stays found at its later sequence when the earlier is forgotten', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(1, ['a'], 0);
    recent.learn(2, ['a'], 600);
    recent.expire(1_001);
    expect(recent.sequenceOf('a')).toBe(2);
  });

  it('renews the newest runs from a sequence on: they are remembered a window from then, the older ones forgotten first', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(1, ['a'], 0);
    recent.learn(2, ['b', 'c'], 100);
    recent.learn(4, ['d'], 200);
    recent.renew(3, 5_000);
    recent.expire(5_999);
    expect([recent.sequenceOf('a'), recent.sequenceOf('b'), recent.sequenceOf('c'), recent.sequenceOf('d')]).toEqual([undefined, 2, 3, 4]);
    expect(recent.first).toBe(2);
    recent.expire(6_001);
    expect(recent.size).toBe(0);
    expect(recent.first).toBe(0);
  });

  it('never forgets past `through`: what a batch still committing holds stays found, however long the commit takes', () => {
    const recent = new RecentRecords(1_000);
    recent.learn(1, ['a'], 0);
    recent.learn(2, ['b'], 0);
    recent.expire(10_000, 1);
    expect([recent.sequenceOf('a'), recent.sequenceOf('b')]).toEqual([undefined, 2]);
    recent.expire(10_000, 2);
    expect(recent.size).toBe(0);
  });

  it('stays small after many runs come and go', () => {
    const recent = new RecentRecords(10);
    for (let i = 0; i < 5_000; i += 1) {
      recent.learn(i + 1, [`r${i}`], i);
      recent.expire(i);
    }
    expect(recent.size).toBeLessThanOrEqual(12);
    expect(recent.sequenceOf('r4999')).toBe(5_000);
    expect(recent.sequenceOf('r0')).toBeUndefined();
  });
});
