import { describe, expect, it } from 'vitest';
import { TokenBucket } from './token-bucket.js';

describe('per-workload rate limit (token bucket, frozen clock)', () => {
  it('allows the burst, then the refill rate, per key', () => {
    let now = 0;
    const limiter = new TokenBucket(2, 3, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('acme/a'))).toEqual([true, true, true, false]);
    expect(limiter.take('acme/b')).toBe(true);
    now += 500;
    expect(limiter.take('acme/a')).toBe(true);
    expect(limiter.take('acme/a')).toBe(false);
    now += 10_000;
    expect([1, 2, 3, 4].map(() => limiter.take('acme/a'))).toEqual([true, true, true, false]);
  });
});
