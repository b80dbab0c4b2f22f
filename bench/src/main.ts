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
import { latency, median, throughput, type RequestFn } from './measure.js';
import { AUTHORIZE_CONCURRENCY, benchAuthorize, type AuthorizeRow } from './authorize.js';
import { benchVault, PACED_RATE, VAULT_CONCURRENCY, type VaultRow } from './vault.js';
import { AUDIT_TARGET_RECORDS_PER_SECOND, AUDIT_TARGET_ROW, benchAudit, printAudit } from './audit.js';

/*
 * `npm run bench`. Absolute numbers on a shared 2-core machine mean little, so every row is
 * reported against raw NATS request/reply measured in the same run, in interleaved rounds.
 * Targets (issue 2): the service layer keeps >= 80% of raw throughput and adds < 100 us median.
 * Issue 3: authorize + WAT mint over NATS keeps >= 70% of raw jose verify-plus-sign at
 * concurrency 64; a repeated token (verified-token cache) beats that ceiling.
 */
const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
const ROUNDS = quick ? 1 : 3;
const LATENCY_COUNT = quick ? 200 : 3_000;
const THROUGHPUT_TOTAL = quick ? 2_000 : 30_000;
const CONCURRENCY = 256;
const WARMUP = quick ? 100 : 1_000;

const RAW_SUBJECT = 'bench.raw.echo';
const SVC_SUBJECT = 'bench.services.echo';
const encoder = new TextEncoder();
const body = encoder.encode(JSON.stringify({ message: 'hello from the benchmark' }));

interface Row {
  name: string;
  request: RequestFn;
  latencies: { medianUs: number; p99Us: number }[];
  rates: number[];
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  // One data dir (so one master key file) for every service the bench starts on this server.
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-'));
  const logger = createLogger('bench', { level: 'silent' });
  const serverSide = await connectToBus({ servers: nats.url, name: 'bench-server' });
  // Every row uses this one client connection, configured as services configure theirs.
  const client: NatsConnection = await connectToBus({ servers: nats.url, name: 'bench-client' });
  try {
    serverSide.subscribe(RAW_SUBJECT, { callback: (_error, msg) => void msg.respond(msg.data) });
    const service = await new Svcm(serverSide as never).add({ name: 'bench-services', version: '0.0.1', queue: 'bench-services' });
    service.addEndpoint('echo', { subject: SVC_SUBJECT, handler: (_error, msg) => msg.respond(msg.data) });
    const mandate = await runService(diagnosticsService, baseEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent' }), { logger, nc: serverSide });
    await serverSide.flush();

    const bus = new BusClient(client, { defaultTimeoutMs: 30_000 });
    const rows: Row[] = [
      { name: 'raw NATS request/reply', request: async () => void (await client.request(RAW_SUBJECT, body, { timeout: 30_000 })), latencies: [], rates: [] },
      { name: '@nats-io/services endpoint', request: async () => void (await client.request(SVC_SUBJECT, body, { timeout: 30_000 })), latencies: [], rates: [] },
      { name: 'Mandate bus + NestJS service', request: async () => void (await bus.request(echoEndpoint, { message: 'hello from the benchmark' })), latencies: [], rates: [] },
    ];

    for (const row of rows) for (let i = 0; i < WARMUP; i += 1) await row.request();
    for (let round = 1; round <= ROUNDS; round += 1) {
      process.stderr.write(`• round ${round}/${ROUNDS}\n`);
      for (const row of rows) {
        row.latencies.push(await latency(row.request, LATENCY_COUNT));
        row.rates.push(await throughput(row.request, THROUGHPUT_TOTAL, CONCURRENCY));
      }
    }

    const raw = summarise(rows[0]!);
    const results = rows.map((row) => {
      const s = summarise(row);
      return { name: row.name, ...s, throughputRatio: s.requestsPerSecond / raw.requestsPerSecond, addedMedianUs: s.medianUs - raw.medianUs };
    });
    const layer = results[2]!;
    await mandate.stop();
    const authorize = await benchAuthorize(client, nats.url, dataDir, { rounds: ROUNDS, total: quick ? 300 : 3_000 });
    const vault = await benchVault(client, nats.url, dataDir, results[0]!.requestsPerSecond, { rounds: ROUNDS, total: quick ? 1_000 : 10_000, pacedSeconds: quick ? 1 : 5 });
    const audit = await benchAudit(client, nats.url, { rounds: ROUNDS, total: quick ? 2_000 : 30_000 });
    const verdict = {
      throughputTarget: layer.throughputRatio >= 0.8 ? 'met' : 'missed',
      latencyTarget: layer.addedMedianUs < 100 ? 'met' : 'missed',
      authorizeTarget: authorize[1]!.ceilingRatio >= 0.7 ? 'met' : 'missed',
      authorizeCachedTarget: authorize[2]!.ceilingRatio > 1 ? 'met' : 'missed',
      vaultThroughputTarget: vault.every((r) => r.rawRatio >= 0.5) ? 'met' : 'missed',
      vaultP99Target: vault.every((r) => r.pacedP99Ms < 5) ? 'met' : 'missed',
      auditTarget: (audit.find((r) => r.name === AUDIT_TARGET_ROW)?.recordsPerSecond ?? 0) >= AUDIT_TARGET_RECORDS_PER_SECOND && audit.every((r) => r.lost === 0 && r.verified) ? 'met' : 'missed',
    };

    if (json) {
      process.stdout.write(`${JSON.stringify({ node: process.version, rounds: ROUNDS, concurrency: CONCURRENCY, results, authorize, vault, audit, verdict }, null, 2)}\n`);
    } else {
      const header = ['', 'median µs', 'p99 µs', `req/s @${CONCURRENCY}`, 'throughput / raw', 'added median µs'];
      const lines = results.map((r) => [
        r.name,
        r.medianUs.toFixed(0),
        r.p99Us.toFixed(0),
        r.requestsPerSecond.toFixed(0),
        `${(r.throughputRatio * 100).toFixed(1)}%`,
        r.name === rows[0]!.name ? '—' : r.addedMedianUs.toFixed(0),
      ]);
      const widths = header.map((_, c) => Math.max(header[c]!.length, ...lines.map((l) => l[c]!.length)));
      const fmt = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
      process.stdout.write(`\nMandate bench (${process.version}, ${ROUNDS} interleaved rounds, medians across rounds)\n\n`);
      process.stdout.write(`${fmt(header)}\n${lines.map(fmt).join('\n')}\n\n`);
      process.stdout.write(`service layer throughput target (>= 80% of raw): ${verdict.throughputTarget}\n`);
      process.stdout.write(`service layer latency target (< 100 µs added median): ${verdict.latencyTarget}\n`);
      printAuthorize(authorize);
      process.stdout.write(`authorize throughput target (>= 70% of jose ceiling @${AUTHORIZE_CONCURRENCY}): ${verdict.authorizeTarget}\n`);
      process.stdout.write(`cached authorize beats the ceiling: ${verdict.authorizeCachedTarget}\n`);
      printVault(vault);
      process.stdout.write(`vault throughput target (>= 50% of raw @${VAULT_CONCURRENCY}): ${verdict.vaultThroughputTarget}\n`);
      process.stdout.write(`vault p99 target (< 5 ms at ${PACED_RATE} req/s): ${verdict.vaultP99Target}\n`);
      printAudit(audit);
      process.stdout.write(`audit target (>= ${AUDIT_TARGET_RECORDS_PER_SECOND} records/s publish → chained, 1 tenant, nothing lost): ${verdict.auditTarget}\n`);
    }
    await service.stop();
  } finally {
    await client.close();
    await serverSide.close();
    await nats.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function printAuthorize(rows: AuthorizeRow[]): void {
  const header = ['authorize', 'median µs', `req/s @${AUTHORIZE_CONCURRENCY}`, 'throughput / ceiling'];
  const lines = rows.map((r) => [r.name, r.medianUs.toFixed(0), r.requestsPerSecond.toFixed(0), `${(r.ceilingRatio * 100).toFixed(1)}%`]);
  const widths = header.map((_, c) => Math.max(header[c]!.length, ...lines.map((l) => l[c]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  process.stdout.write(`\n${fmt(header)}\n${lines.map(fmt).join('\n')}\n\n`);
}

function printVault(rows: VaultRow[]): void {
  const header = ['vault', 'median µs', `req/s @${VAULT_CONCURRENCY}`, 'throughput / raw', `p99 ms @${PACED_RATE}/s`];
  const lines = rows.map((r) => [r.name, r.medianUs.toFixed(0), r.requestsPerSecond.toFixed(0), `${(r.rawRatio * 100).toFixed(1)}%`, r.pacedP99Ms.toFixed(2)]);
  const widths = header.map((_, c) => Math.max(header[c]!.length, ...lines.map((l) => l[c]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  process.stdout.write(`\n${fmt(header)}\n${lines.map(fmt).join('\n')}\n\n`);
}

function summarise(row: Row) {
  return {
    medianUs: median(row.latencies.map((l) => l.medianUs)),
    p99Us: median(row.latencies.map((l) => l.p99Us)),
    requestsPerSecond: median(row.rates),
  };
}

await main();
