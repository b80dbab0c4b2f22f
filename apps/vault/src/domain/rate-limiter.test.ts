import { describe, expect, it } from 'vitest';
import { fillPresetUrl, PROVIDER_PRESETS } from '@mandate/contracts';
import { RateLimiter } from './rate-limiter.js';

describe('per-workload rate limit (token bucket, frozen clock)', () => {
  it('allows the burst, then the refill rate, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('acme/a'))).toEqual([true, true, true, false]);
    expect(limiter.take('acme/b')).toBe(true);
    now += 500;
    expect(limiter.take('acme/a')).toBe(true);
    expect(limiter.take('acme/a')).toBe(false);
    now += 10_000;
    expect([1, 2, 3, 4].map(() => limiter.take('acme/a'))).toEqual([true, true, true, false]);
  });
});

describe('vendor presets', () => {
  it.each(Object.entries(PROVIDER_PRESETS))('%s fills every endpoint from its parameters', (_name, preset) => {
    const params = { tenantId: 'contoso.onmicrosoft.com', domain: 'dev-1.okta.com', instance: 'login' };
    for (const template of [preset.authorizationEndpoint, preset.tokenEndpoint, ...('revocationEndpoint' in preset ? [preset.revocationEndpoint] : [])]) {
      const url = new URL(fillPresetUrl(template, params));
      expect(url.protocol).toBe('https:');
      expect(url.href).not.toContain('{');
    }
  });

  it('refuses a parameter that would change the host or path', () => {
    expect(() => fillPresetUrl(PROVIDER_PRESETS.okta.tokenEndpoint, { domain: 'evil.com/x?' })).toThrow(TypeError);
    expect(() => fillPresetUrl(PROVIDER_PRESETS.microsoft.tokenEndpoint, {})).toThrow(TypeError);
  });
});
