import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import { BusClient, connectToBus, runService } from '@mandate/bus';
import { baseEnvSchema } from '@mandate/config';
import { echoEndpoint } from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { startNatsServer } from '@mandate/testing';
import { diagnosticsService } from '@mandate/diagnostics/module';
import { measureInRounds } from './measure.js';
import { AUTHORIZE_CONCURRENCY, benchAuthorize, printAuthorize } from './authorize.js';
import { benchVault, PACED_RATE, printVault, VAULT_CONCURRENCY } from './vault.js';
import { AUDIT_TARGET_RECORDS_PER_SECOND, AUDIT_TARGET_ROW, benchAudit, printAudit } from './audit.js';
import { benchGateway, GATEWAY_CONCURRENCY, GATEWAY_TARGETS, gatewayVerdict, printGateway } from './gateway.js';
import { benchPolicy, POLICY_ADDED_CALL_MEDIAN_TARGET_US, POLICY_EVALUATION_P50_TARGET_US, policyVerdict, printPolicy } from './policy.js';
import { benchPolicyReplay, policyReplayVerdict, printPolicyReplay } from './policy-replay.js';
import { percent, printTable } from './table.js';
import { runSoak, soakOptions } from './soak.js';
import { benchDeployed, printDeployed } from './deployed.js';

/*
 * `npm run bench`. Absolute numbers on a shared 2-core machine mean little, so every row is
 * reported against raw NATS request/reply measured in the same run, in interleaved rounds.
 * Targets (issue 2): the service layer keeps >= 80% of raw throughput and adds < 100 us median.
 * Issue 3: authorize + WAT mint over NATS keeps >= 70% of raw jose verify-plus-sign at
 * concurrency 64; a repeated token (verified-token cache) beats that ceiling.
 * The gateway: tools/call through it adds at most 1 ms median and keeps >= 50% of the direct call's
 * throughput at concurrency 64; tools/list over 500 tools in 5 targets takes under 5 ms median.
 */
const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
/** `--only=audit|gateway|policy|policy-replay|deployed`: just that group of rows (while working on it); the full run is what docs/benchmark.md reports. */
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const ROUNDS = quick ? 1 : 3;
const LATENCY_COUNT = quick ? 200 : 3_000;
const THROUGHPUT_TOTAL = quick ? 2_000 : 30_000;
const CONCURRENCY = 256;
const WARMUP = quick ? 100 : 1_000;

const RAW_SUBJECT = 'bench.raw.echo';
const SVC_SUBJECT = 'bench.services.echo';
const body = new TextEncoder().encode(JSON.stringify({ message: 'hello from the benchmark' }));

async function main(): Promise<void> {
  const nats = await startNatsServer();
  // One data dir (so one master key file) for every service the bench starts on this server.
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-'));
  const logger = createLogger('bench', { level: 'silent' });
  const serverSide = await connectToBus({ servers: nats.url, name: 'bench-server' });
  // Every row uses this one client connection, configured as services configure theirs.
  const client: NatsConnection = await connectToBus({ servers: nats.url, name: 'bench-client' });
  try {
    if (only !== undefined) return await runOnly(only, client, nats.url, dataDir);
    serverSide.subscribe(RAW_SUBJECT, { callback: (_error, msg) => void msg.respond(msg.data) });
    const service = await new Svcm(serverSide as never).add({ name: 'bench-services', version: '0.0.1', queue: 'bench-services' });
    service.addEndpoint('echo', { subject: SVC_SUBJECT, handler: (_error, msg) => msg.respond(msg.data) });
    const mandate = await runService(diagnosticsService, baseEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent' }), { logger, nc: serverSide });
    await serverSide.flush();

    const bus = new BusClient(client, { defaultTimeoutMs: 30_000 });
    const rows = [
      { name: 'raw NATS request/reply', request: async () => void (await client.request(RAW_SUBJECT, body, { timeout: 30_000 })) },
      { name: '@nats-io/services endpoint', request: async () => void (await client.request(SVC_SUBJECT, body, { timeout: 30_000 })) },
      { name: 'Mandate bus + NestJS service', request: async () => void (await bus.request(echoEndpoint, { message: 'hello from the benchmark' })) },
    ];
    const measured = await measureInRounds('round', rows, { rounds: ROUNDS, warmup: { total: WARMUP, concurrency: 1 }, latencyCount: LATENCY_COUNT, total: THROUGHPUT_TOTAL, concurrency: CONCURRENCY });
    const raw = measured[0]!;
    const results = measured.map(({ request: _request, ...r }) => ({ ...r, throughputRatio: r.requestsPerSecond / raw.requestsPerSecond, addedMedianUs: r.medianUs - raw.medianUs }));
    const layer = results[2]!;
    await mandate.stop();
    const authorize = await benchAuthorize(client, nats.url, dataDir, { rounds: ROUNDS, total: quick ? 300 : 3_000 });
    const vault = await benchVault(client, nats.url, dataDir, results[0]!.requestsPerSecond, { rounds: ROUNDS, total: quick ? 1_000 : 10_000, pacedSeconds: quick ? 1 : 5 });
    const audit = await benchAudit(client, nats.url, auditOptions());
    // Last: its audit records then wait in the stream for nobody, rather than for the audit rows' consumer.
    const gateway = await benchGateway(client, nats.url, dataDir, { rounds: ROUNDS, total: quick ? 640 : 10_000, latencyCount: quick ? 100 : 2_000, listCount: quick ? 20 : 300 });
    const policy = await benchPolicy(client, nats.url, dataDir, policyOptions());
    const replay = await benchPolicyReplay(client, nats.url, dataDir, { rounds: ROUNDS, ...(quick ? { entries: 2_000 } : {}) });
    const verdict = {
      throughputTarget: layer.throughputRatio >= 0.8 ? 'met' : 'missed',
      latencyTarget: layer.addedMedianUs < 100 ? 'met' : 'missed',
      authorizeTarget: authorize[1]!.ceilingRatio >= 0.7 ? 'met' : 'missed',
      authorizeCachedTarget: authorize[2]!.ceilingRatio > 1 ? 'met' : 'missed',
      vaultThroughputTarget: vault.every((r) => r.rawRatio >= 0.5) ? 'met' : 'missed',
      vaultP99Target: vault.every((r) => r.pacedP99Ms < 5) ? 'met' : 'missed',
      ...auditVerdict(audit),
      ...gatewayVerdict(gateway),
      ...policyVerdict(policy),
      ...policyReplayVerdict(replay),
    };

    if (json) {
      process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, concurrency: CONCURRENCY, results, authorize, vault, audit, gateway, policy, replay, verdict }, null, 2)}\n`);
    } else {
      const header = ['', 'median µs', 'p99 µs', `req/s @${CONCURRENCY}`, 'throughput / raw', 'added median µs'];
      const lines = results.map((r) => [r.name, r.medianUs.toFixed(0), r.p99Us.toFixed(0), r.requestsPerSecond.toFixed(0), percent(r.throughputRatio), r.name === raw.name ? '—' : r.addedMedianUs.toFixed(0)]);
      process.stdout.write(`\nMandate bench (${process.version}, ${ROUNDS} interleaved rounds, medians across rounds)\n`);
      printTable(header, lines);
      process.stdout.write(`service layer throughput target (>= 80% of raw): ${verdict.throughputTarget}\n`);
      process.stdout.write(`service layer latency target (< 100 µs added median): ${verdict.latencyTarget}\n`);
      printAuthorize(authorize);
      process.stdout.write(`authorize throughput target (>= 70% of jose ceiling @${AUTHORIZE_CONCURRENCY}): ${verdict.authorizeTarget}\n`);
      process.stdout.write(`cached authorize beats the ceiling: ${verdict.authorizeCachedTarget}\n`);
      printVault(vault);
      process.stdout.write(`vault throughput target (>= 50% of raw @${VAULT_CONCURRENCY}): ${verdict.vaultThroughputTarget}\n`);
      process.stdout.write(`vault p99 target (< 5 ms at ${PACED_RATE} req/s): ${verdict.vaultP99Target}\n`);
      printAuditVerdict(audit, verdict);
      printGateway(gateway);
      process.stdout.write(`gateway latency target (<= 1 ms added median over the direct call): ${verdict.gatewayLatencyTarget}\n`);
      process.stdout.write(`gateway throughput target (>= 50% of the direct call's @${GATEWAY_CONCURRENCY}): ${verdict.gatewayThroughputTarget}\n`);
      process.stdout.write(`gateway tools/list target (< 5 ms median, ${GATEWAY_TARGETS} targets of 100 tools): ${verdict.gatewayListTarget}\n`);
      printPolicyVerdict(policy, verdict);
      printPolicyReplay(replay);
    }
    await service.stop();
  } finally {
    await client.close();
    await serverSide.close();
    await nats.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function policyOptions() {
  return { rounds: ROUNDS, total: quick ? 640 : 10_000, latencyCount: quick ? 100 : 2_000, listCount: quick ? 20 : 300, evaluations: quick ? 300 : 10_000, loads: quick ? 1 : 3 };
}

function printPolicyVerdict(policy: Awaited<ReturnType<typeof benchPolicy>>, verdict: ReturnType<typeof policyVerdict>): void {
  printPolicy(policy);
  process.stdout.write(`policy evaluation target (p50 < ${POLICY_EVALUATION_P50_TARGET_US} µs at 100 policies): ${verdict.policyEvaluationTarget}\n`);
  process.stdout.write(`policy tools/call target (<= ${POLICY_ADDED_CALL_MEDIAN_TARGET_US} µs added median, 100 policies): ${verdict.policyAddedCallTarget}\n`);
}

function auditOptions() {
  return { rounds: ROUNDS, total: quick ? 2_000 : 30_000 };
}

function auditVerdict(audit: Awaited<ReturnType<typeof benchAudit>>) {
  const target = audit.find((r) => r.name === AUDIT_TARGET_ROW)?.recordsPerSecond ?? 0;
  return { auditTarget: target >= AUDIT_TARGET_RECORDS_PER_SECOND && audit.every((r) => r.lost === 0 && r.verified) ? 'met' : 'missed' };
}

function printAuditVerdict(audit: Awaited<ReturnType<typeof benchAudit>>, verdict: ReturnType<typeof auditVerdict>): void {
  printAudit(audit);
  process.stdout.write(`audit target (>= ${AUDIT_TARGET_RECORDS_PER_SECOND} records/s publish → chained, 1 tenant, nothing lost): ${verdict.auditTarget}\n`);
}

function printOnlyReplay(replay: Awaited<ReturnType<typeof benchPolicyReplay>>): void {
  if (json) process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, replay, verdict: policyReplayVerdict(replay) }, null, 2)}\n`);
  else printPolicyReplay(replay);
}

function printOnlyGateway(gateway: Awaited<ReturnType<typeof benchGateway>>): void {
  const verdict = gatewayVerdict(gateway);
  if (json) return void process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, gateway, verdict }, null, 2)}\n`);
  process.stdout.write(`\nMandate bench, gateway rows (${process.version}, ${ROUNDS} interleaved rounds, medians across rounds)\n`);
  printGateway(gateway);
  process.stdout.write(`gateway latency target (<= 1 ms added median over the direct call): ${verdict.gatewayLatencyTarget}\n`);
  process.stdout.write(`gateway throughput target (>= 50% of the direct call's @${GATEWAY_CONCURRENCY}): ${verdict.gatewayThroughputTarget}\n`);
  process.stdout.write(`gateway tools/list target (< 5 ms median, ${GATEWAY_TARGETS} targets of 100 tools): ${verdict.gatewayListTarget}\n`);
}

/** One group of rows alone, as `--only=<group>` asks. */
async function runOnly(group: string, client: NatsConnection, natsUrl: string, dataDir: string): Promise<void> {
  if (group === 'policy-replay') return printOnlyReplay(await benchPolicyReplay(client, natsUrl, dataDir, { rounds: ROUNDS }));
  if (group === 'gateway') return printOnlyGateway(await benchGateway(client, natsUrl, dataDir, { rounds: ROUNDS, total: quick ? 640 : 10_000, latencyCount: quick ? 100 : 2_000, listCount: quick ? 20 : 300 }));
  if (group === 'audit') {
    const audit = await benchAudit(client, natsUrl, auditOptions());
    const verdict = auditVerdict(audit);
    if (json) return void process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, audit, verdict }, null, 2)}\n`);
    process.stdout.write(`\nMandate bench, audit rows (${process.version}, ${ROUNDS} interleaved rounds, medians across rounds)\n`);
    return printAuditVerdict(audit, verdict);
  }
  if (group !== 'policy') throw new Error(`--only knows audit, gateway, policy, policy-replay and deployed, not ${group}`);
  const policy = await benchPolicy(client, natsUrl, dataDir, policyOptions());
  const verdict = policyVerdict(policy);
  if (json) process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, policy, verdict }, null, 2)}\n`);
  else {
    process.stdout.write(`\nMandate bench, policy rows (${process.version}, ${ROUNDS} interleaved rounds, medians across rounds)\n`);
    printPolicyVerdict(policy, verdict);
  }
}

// `--soak` (not in CI): the audit trail under millions of records, its own run (soak.ts).
if (process.argv.includes('--soak')) await runSoak(soakOptions(process.argv));
// `--only=deployed`: the services as `mandate up` runs them, each its own process (deployed.ts); no in-process server.
else if (only === 'deployed') await runDeployed();
else await main();

async function runDeployed(): Promise<void> {
  const options = { rounds: ROUNDS, seconds: quick ? 0.5 : 2, warmupSeconds: quick ? 0.3 : 0.5, pacedSeconds: quick ? 0.5 : 2 };
  const deployed = await benchDeployed(options);
  if (json) process.stdout.write(`${JSON.stringify({ node: process.version, ...options, deployed }, null, 2)}\n`);
  else printDeployed(deployed, options);
}
