import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyEndpoint, providerCreateEndpoint, type MandateError } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('vault rate limits');

describe.skipIf(missing)('per-workload rate limits over NATS', () => {
  let h: TestSystem;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'], env: { VAULT_RATE_LIMIT_PER_SECOND: '1', VAULT_RATE_LIMIT_BURST: '3' } });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'search', apiKey: 'k-123', allowedWorkloads: ['runaway-agent', 'calm-agent'] });
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('answers rate_limited to a runaway workload without starving the others', async () => {
    const runaway = await h.machineWat('runaway-agent', await h.workload('runaway-agent'));
    const calm = await h.machineWat('calm-agent', await h.workload('calm-agent'));
    const results = await Promise.all(
      Array.from({ length: 6 }, () => h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: runaway, provider: 'search' }).then(() => 'ok', (e: MandateError) => e.code)),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r === 'rate_limited')).toHaveLength(3);
    expect(await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: calm, provider: 'search' })).toEqual({ apiKey: 'k-123' });
    await expect.poll(() => h.audit.filter((r) => r.action === 'api-key-release' && r.reason === 'rate_limited').length).toBe(3);
  });
});
