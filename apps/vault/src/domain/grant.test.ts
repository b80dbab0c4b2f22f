import { describe, expect, it } from 'vitest';
import { Grant } from './grant.js';

const NOW = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const subject = { workload: 'report-agent', provider: 'reporting', user: { iss: 'https://idp.example', sub: 'sarah' } };

describe('Grant (pure, frozen clock)', () => {
  it('none: covers nothing; an approval covers its scopes, until revoked (no store TTL) or until its term', () => {
    expect(new Grant(undefined, NOW).missing(['a'])).toEqual(['a']);
    expect(new Grant(undefined, NOW).view()).toBeUndefined();
    const forever = new Grant(undefined, NOW).approve(subject, ['a'], {});
    expect(forever.options).toBeUndefined();
    expect(new Grant(forever.value, NOW + 365 * DAY).missing(['a', 'b'])).toEqual(['b']);
    const week = new Grant(undefined, NOW).approve(subject, ['a'], { expiresAt: NOW + 7 * DAY });
    expect(week.options).toEqual({ ttlMs: 7 * DAY });
  });

  it('a later approval sets the term of the scopes it asked about and keeps the others', () => {
    const first = new Grant(undefined, NOW).approve(subject, ['a', 'b'], { expiresAt: NOW + DAY }).value;
    const second = new Grant(first, NOW + 1).approve(subject, ['b', 'c'], { expiresAt: NOW + 30 * DAY });
    expect(second.value.scopeTerms).toEqual({ a: NOW + DAY, b: NOW + 30 * DAY, c: NOW + 30 * DAY });
    expect(second.options).toEqual({ ttlMs: 30 * DAY - 1 });
    expect(new Grant(second.value, NOW + 2).view()).toMatchObject({ scopes: ['a', 'b', 'c'], expiresAt: new Date(NOW + 30 * DAY).toISOString(), once: false });
  });

  it('lapses scope by scope; with every term passed it reads as none', () => {
    const grant = new Grant(undefined, NOW).approve(subject, ['a'], { expiresAt: NOW + DAY }).value;
    const mixed = new Grant(grant, NOW).approve(subject, ['b'], { expiresAt: NOW + 2 * DAY }).value;
    expect(new Grant(mixed, NOW + DAY).missing(['a', 'b'])).toEqual(['a']);
    expect(new Grant(mixed, NOW + DAY).view()?.scopes).toEqual(['b']);
    expect(new Grant(mixed, NOW + 2 * DAY).view()).toBeUndefined();
    // Approving again after it lapsed starts from nothing: the lapsed scopes are not revived.
    expect(Object.keys(new Grant(mixed, NOW + 3 * DAY).approve(subject, ['c'], {}).value.scopeTerms)).toEqual(['c']);
  });

  it('"this time only" is marked as such', () => {
    const once = new Grant(undefined, NOW).approve(subject, ['a'], { once: true, expiresAt: NOW + 600_000 });
    expect(once.value.once).toBe(true);
    expect(new Grant(once.value, NOW).view()?.once).toBe(true);
  });
});
