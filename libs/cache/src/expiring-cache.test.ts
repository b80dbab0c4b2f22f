import { describe, expect, it } from 'vitest';
import { ExpiringCache } from './expiring-cache.js';

describe('ExpiringCache', () => {
  it('answers until the entry expires, then forgets it', () => {
    const cache = new ExpiringCache<string>(10);
    cache.set('k', 'v', 100);
    expect(cache.get('k', 99)).toBe('v');
    expect(cache.get('k', 100)).toBeUndefined();
    expect(cache.get('k', 50)).toBeUndefined();
  });

  it('drops the oldest entry when full', () => {
    const cache = new ExpiringCache<number>(2);
    cache.set('a', 1, 100);
    cache.set('b', 2, 100);
    cache.set('c', 3, 100);
    expect([cache.get('a', 0), cache.get('b', 0), cache.get('c', 0)]).toEqual([undefined, 2, 3]);
  });

  it('keeps nothing when its size is 0', () => {
    const cache = new ExpiringCache<number>(0);
    expect(cache.enabled).toBe(false);
    cache.set('a', 1, 100);
    expect(cache.get('a', 0)).toBeUndefined();
  });

  it('keys by a hash of the parts, never the parts themselves, and keeps parts apart', () => {
    const key = ExpiringCache.keyOf('acme', 'agent', 3, 'eyJ.secret.token');
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key).not.toContain('secret');
    expect(ExpiringCache.keyOf('ab', 'c')).not.toBe(ExpiringCache.keyOf('a', 'bc'));
  });
});
