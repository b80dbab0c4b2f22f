import { describe, expect, it } from 'vitest';
import { fillPresetUrl, PROVIDER_PRESETS } from '@mandate/contracts';

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
