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
      gateway: { rows: { name: string; medianUs: number; requestsPerSecond: number; throughputRatio: number; addedMedianUs?: number }[] };
      policy: { evaluation: { policies: number; p50Us: number }[]; gateway: { name: string; medianUs: number }[]; listed: { withoutPolicy: number; withPolicy: number } };
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
      'audit: publish → chained, 1 tenant, one record a message',
      'audit: publish → chained, 8 tenants',
      'audit: backlog → chained, 1 tenant, one record a message',
    ]);
    for (const row of report.audit) {
      expect(row).toMatchObject({ lost: 0, verified: true });
      expect(row.ofBaseline).toBeGreaterThan(0);
    }
    expect(Object.keys(report.verdict)).toContain('auditTarget');
    // The gateway rows: tools/call direct (the baseline) and through the gateway, tools/list direct and through it.
    expect(report.gateway.rows.map((r) => r.name)).toEqual([
      'tools/call directly at the upstream (SDK client)',
      'tools/call through the gateway (cached M2M, scope check, audit)',
      'tools/list directly at an SDK server with the same 500 tools',
      'tools/list through the gateway (500 tools in 5 targets)',
    ]);
    expect(report.gateway.rows[0]?.throughputRatio).toBe(1);
    for (const row of report.gateway.rows) expect(row.medianUs, row.name).toBeGreaterThan(0);
    expect(report.gateway.rows[1]?.requestsPerSecond).toBeGreaterThan(0);
    expect(report.gateway.rows[1]?.addedMedianUs).toBeTypeOf('number');
    expect(Object.keys(report.verdict)).toEqual(expect.arrayContaining(['gatewayLatencyTarget', 'gatewayThroughputTarget', 'gatewayListTarget']));
    // The policy rows: evaluation at each set size, the gateway with and without a set, and the set hiding tools.
    // Each set size, and the engine's fixed cost with one policy.
    expect(new Set(report.policy.evaluation.map((r) => r.policies))).toEqual(new Set([10, 100, 1_000, 1]));
    for (const row of report.policy.evaluation) expect(row.p50Us).toBeGreaterThan(0);
    expect(report.policy.gateway.length).toBeGreaterThanOrEqual(2);
    for (const row of report.policy.gateway) expect(row.medianUs, row.name).toBeGreaterThan(0);
    expect(report.policy.listed.withPolicy).toBeLessThan(report.policy.listed.withoutPolicy);
  }, 120_000);

  it('--only=deployed: the services each their own process, load and raw responder in theirs, every row against raw with CPU per request by process', async () => {
    assertBuilt(benchEntry);
    const bench = spawnNode(benchEntry, ['--only=deployed', '--quick', '--json']);
    expect(await bench.exit).toBe(0);
    const report = JSON.parse(bench.output().slice(bench.output().indexOf('{'))) as {
      deployed: { row: string; requestsPerSecond: Record<string, number>; rawRatio: number; pacedP99Ms: number; cpuUs: Record<string, number> }[];
    };
    expect(report.deployed.map((r) => r.row)).toEqual(['raw', 'echo', 'api-key', 'm2m', 'token-for-workload']);
    expect(report.deployed[0]?.rawRatio).toBe(1);
    for (const row of report.deployed) {
      expect(row.requestsPerSecond['256'], row.row).toBeGreaterThan(0);
      expect(row.pacedP99Ms, row.row).toBeGreaterThan(0);
      expect(Object.keys(row.cpuUs)).toEqual(expect.arrayContaining(['nats-server', 'audit', 'authorizer', 'vault', 'diagnostics', 'load']));
    }
    // Each row's own process does the work: the vault's CPU shows in the vault rows, the authorizer's in token-for-workload.
    expect(report.deployed.find((r) => r.row === 'api-key')!.cpuUs['vault']).toBeGreaterThan(0);
    expect(report.deployed.find((r) => r.row === 'token-for-workload')!.cpuUs['authorizer']).toBeGreaterThan(0);
  }, 240_000);
});
