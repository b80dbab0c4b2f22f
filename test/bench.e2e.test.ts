import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { natsServerMissing } from '@mandate/testing';
import { assertBuilt, root, spawnNode } from './processes.js';

const benchEntry = join(root, 'bench', 'dist', 'main.js');
const missing = natsServerMissing('npm run bench smoke run');

// The benchmark is judged by `npm run bench`, not here: this only proves it still runs and
// reports every row against the baseline. No timing is asserted.
describe.skipIf(missing)('npm run bench', () => {
  it('measures raw NATS, @nats-io/services, the Mandate layer, authorize + WAT mint and the audit trail, and reports ratios to their baselines', async () => {
    assertBuilt(benchEntry);
    const bench = spawnNode(benchEntry, ['--quick', '--json']);
    expect(await bench.exit).toBe(0);
    const report = JSON.parse(bench.output().slice(bench.output().indexOf('{'))) as {
      results: { name: string; medianUs: number; requestsPerSecond: number; throughputRatio: number }[];
      authorize: { name: string; requestsPerSecond: number; ceilingRatio: number }[];
      audit: { name: string; recordsPerSecond: number; ofBaseline: number; lost: number; verified: boolean }[];
      vault: { name: string; requestsPerSecond: number; rawRatio: number; pacedP99Ms: number }[];
      verdict: Record<string, string>;
    };
    expect(report.results.map((r) => r.name)).toEqual(['raw NATS request/reply', '@nats-io/services endpoint', 'Mandate bus + NestJS service']);
    expect(report.results[0]?.throughputRatio).toBe(1);
    for (const row of report.results) {
      expect(row.requestsPerSecond).toBeGreaterThan(0);
      expect(row.medianUs).toBeGreaterThan(0);
    }
    expect(report.authorize.map((r) => r.name)).toEqual([
      'jose: sign + verify the assertion, verify RS256, sign EdDSA (ceiling)',
      'authorize + WAT mint over NATS',
      '… same token repeated (verified-token cache)',
    ]);
    expect(report.authorize[0]?.ceilingRatio).toBe(1);
    for (const row of report.authorize) expect(row.requestsPerSecond).toBeGreaterThan(0);
    expect(Object.keys(report.verdict)).toEqual(
      expect.arrayContaining(['throughputTarget', 'latencyTarget', 'authorizeTarget', 'authorizeCachedTarget', 'vaultThroughputTarget', 'vaultP99Target']),
    );
    expect(report.vault.map((r) => r.name)).toEqual(['vault oauth2-token M2M (cached)', 'vault api-key']);
    for (const row of report.vault) expect(row.requestsPerSecond).toBeGreaterThan(0);
    expect(report.audit.map((r) => r.name)).toEqual([
      'JetStream publish, unconsumed (baseline)',
      'audit: publish → chained, 1 tenant',
      'audit: publish → chained, 8 tenants',
      'audit: backlog → chained, 1 tenant',
    ]);
    for (const row of report.audit) {
      expect(row).toMatchObject({ lost: 0, verified: true });
      expect(row.ofBaseline).toBeGreaterThan(0);
    }
    expect(Object.keys(report.verdict)).toContain('auditTarget');
  }, 120_000);
});
