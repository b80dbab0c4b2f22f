import { randomUUID, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { declareStreams, runService, type RunningService } from '@mandate/bus';
import { AUDIT_CONSUMER, AUDIT_STREAM, auditSubject, type AuditRecord, type StreamDefinition, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { createLogger } from '@mandate/telemetry';
import { auditService, AuditTrail, auditEnvSchema, TrailRepository } from '@mandate/audit/module';
import { median, rate } from './measure.js';
import { percent, printTable } from './table.js';
import type { AuditPublisherInput } from './audit-publisher.js';

export interface AuditRow {
  name: string;
  records: number;
  /** Median across rounds. */
  recordsPerSecond: number;
  /** Slowest and fastest round. */
  range: [number, number];
  /** Against the same run's raw JetStream publish rate (the baseline row), median of the rounds' ratios. */
  ofBaseline: number;
  /** Records missing from (or twice in) the chains at the end: must be 0. */
  lost: number;
  verified: boolean;
}

/** Publishes with at most this many acknowledgements outstanding, as a busy fleet of services would. */
const PUBLISH_WINDOW = 512;

function records(tenants: string[], count: number): AuditRecord[] {
  const now = new Date().toISOString();
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    tenant: tenants[i % tenants.length] as TenantId,
    service: 'authorizer',
    action: 'authorize',
    outcome: 'allowed',
    occurredAt: now,
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    actor: { workload: 'bench-agent', user: { iss: 'https://idp.example', sub: `user-${i}` } },
    target: { provider: 'crm', scopes: ['crm:read'] },
  }));
}

/**
 * Publishes from a worker thread with its own connection (see audit-publisher.ts): resolves to a
 * function that starts publishing (once the thread is up and connected) and resolves when done.
 */
async function publisher(
  natsUrl: string,
  batch: AuditRecord[],
  batched: boolean,
  subjectOf: (record: AuditRecord) => string = (record) => auditSubject(record.tenant, record.service, record.action),
): Promise<() => Promise<void>> {
  const messages = batch.map((record) => ({ subject: subjectOf(record), body: JSON.stringify(record), id: record.id }));
  const worker = new Worker(new URL('./audit-publisher.js', import.meta.url), { workerData: { natsUrl, window: PUBLISH_WINDOW, batched, messages } satisfies AuditPublisherInput });
  const next = () =>
    new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the audit publisher exited with ${code}`)));
    });
  await next();
  return async () => {
    const done = next();
    worker.postMessage('go');
    await done;
    await worker.terminate();
  };
}

/**
 * The baseline: the same records, publisher and window, into a stream configured like
 * MANDATE_AUDIT (file storage, the same duplicate window) that nobody consumes. What JetStream
 * and this machine can take in at the moment; the audit rows are reported against it because the
 * machine's speed varies from run to run by a quarter or more.
 */
const BASELINE_STREAM: StreamDefinition = Object.freeze({
  ...AUDIT_STREAM,
  name: 'BENCH_AUDIT_BASELINE',
  description: 'audit bench baseline: raw JetStream publishes, never consumed',
  subjects: ['bench.baseline.>'],
  denyDelete: false,
  denyPurge: false,
});

async function baselineRate(natsUrl: string, batch: AuditRecord[]): Promise<number> {
  return rate(batch.length, await publisher(natsUrl, batch, false, (record) => `bench.baseline.${record.tenant}.${record.service}.${record.action}`));
}

/**
 * Waits until the audit consumer has nothing pending: the rows before this one published audit
 * records (every authorization and release does), and chaining that backlog must not be timed
 * as part of the first audit row.
 */
async function waitCaughtUp(nc: NatsConnection, timeoutMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await jsm.consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER);
    if (info.num_pending === 0 && info.num_ack_pending === 0) return;
    if (Date.now() > deadline) throw new Error(`the audit service did not catch up with earlier rows' records (${info.num_pending + info.num_ack_pending} left)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitChained(repository: TrailRepository, expected: Map<string, number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const heads = await Promise.all([...expected.keys()].map((t) => repository.chainHead(t as TenantId)));
    if (heads.every((h, i) => (h?.value.sequence ?? 0) >= [...expected.values()][i]!)) return;
    if (Date.now() > deadline) throw new Error('the audit bench timed out waiting for records to be chained');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The audit row (issue 6): sustained records per second from publish (a JetStream publish,
 * acknowledged) to chained and stored (the tenant's chain head covers it), with nothing lost.
 * Two ways: records published while the audit service runs, and a backlog already in the stream
 * when it starts (the service alone, without the publishers' share of the CPU). Published as
 * services publish (records that queue up on a subject go in one message), and, to tell what that
 * does, one record a message; the backlog is one record a message (the most messages to drain).
 */
export async function benchAudit(nc: NatsConnection, natsUrl: string, options: { rounds: number; total: number }): Promise<AuditRow[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-audit-'));
  // The linger (AUDIT_CHAIN_LINGER_MS, 1 s by default) only decides how long the last records of a
  // burst wait for others to chain with (at a low rate); in a row of a second or two it would be
  // most of what is timed. 10 ms, what it was before the default went up, keeps the rows about
  // throughput; the soak runs the default.
  const env = auditEnvSchema.parse({ NATS_URL: natsUrl, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: dataDir, AUDIT_WRITER_ID: 'bench', AUDIT_CHAIN_LINGER_MS: '10' });
  const logger = createLogger('bench-audit', { level: 'silent' });
  const repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 });
  let service: RunningService | undefined = await runService(auditService, env, { logger });
  // How long each tenant's chain must be: what was published to it.
  const chained = new Map<string, number>();
  const shapes = [
    { name: AUDIT_TARGET_ROW, tenants: ['bench-audit-1'], batched: true },
    { name: 'audit: publish → chained, 1 tenant, one record a message', tenants: ['bench-audit-s'], batched: false },
    { name: 'audit: publish → chained, 8 tenants', tenants: Array.from({ length: 8 }, (_, i) => `bench-audit-m${i}`), batched: true },
    { name: 'audit: backlog → chained, 1 tenant, one record a message', tenants: ['bench-audit-b'], batched: false, backlog: true },
  ].map((shape) => ({ ...shape, rates: [] as number[], ratios: [] as number[] }));
  const baselines: number[] = [];
  await declareStreams(nc, [BASELINE_STREAM]);
  try {
    await waitCaughtUp(nc, 300_000);
    for (let round = 1; round <= options.rounds; round += 1) {
      process.stderr.write(`• audit round ${round}/${options.rounds}\n`);
      const baseline = await baselineRate(natsUrl, records(['bench-baseline'], options.total));
      baselines.push(baseline);
      for (const shape of shapes) {
        const batch = records(shape.tenants, options.total);
        for (const r of batch) chained.set(r.tenant, (chained.get(r.tenant) ?? 0) + 1);
        // Timed until the last record is chained: from the first publish or, for a backlog (published while no service ran), from the service's start.
        let started: number;
        if (shape.backlog) {
          await service?.stop();
          service = undefined;
          await (await publisher(natsUrl, batch, shape.batched))();
          started = performance.now();
          service = await runService(auditService, env, { logger });
        } else {
          const publish = await publisher(natsUrl, batch, shape.batched);
          started = performance.now();
          await publish();
        }
        await waitChained(repository, chained, 300_000);
        shape.rates.push(batch.length / ((performance.now() - started) / 1000));
        shape.ratios.push(shape.rates.at(-1)! / baseline);
      }
    }
    // Nothing lost, nothing twice: every chain is exactly as long as what was published to it, and verifies.
    const trail = service!.app.get(AuditTrail);
    let lost = 0;
    let verified = true;
    for (const [tenant, count] of chained) {
      const head = await repository.chainHead(tenant as TenantId);
      lost += Math.abs((head?.value.sequence ?? 0) - count);
      verified &&= (await trail.verify(tenant as TenantId, {})).ok;
    }
    // Nobody chains the baseline's stream: nothing there to lose or verify.
    const row = (name: string, rates: number[], ofBaseline: number, chains = { lost: 0, verified: true }): AuditRow =>
      ({ name, records: options.total, recordsPerSecond: median(rates), range: [Math.min(...rates), Math.max(...rates)], ofBaseline, ...chains });
    return [row('JetStream publish, unconsumed (baseline)', baselines, 1), ...shapes.map((shape) => row(shape.name, shape.rates, median(shape.ratios), { lost, verified }))];
  } finally {
    await (await jetstreamManager(nc)).streams.delete(BASELINE_STREAM.name).catch(() => undefined);
    await service?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Issue 6: at least this many records per second from publish to chained and stored, into one tenant. */
export const AUDIT_TARGET_RECORDS_PER_SECOND = 10_000;
export const AUDIT_TARGET_ROW = 'audit: publish → chained, 1 tenant';

export function printAudit(rows: AuditRow[]): void {
  const header = ['audit', 'records', 'records/s', 'rounds', 'of baseline', 'lost', 'chains verify'];
  const range = (r: AuditRow) => `${r.range[0].toFixed(0)}–${r.range[1].toFixed(0)}`;
  printTable(header, rows.map((r) => [r.name, String(r.records), r.recordsPerSecond.toFixed(0), range(r), percent(r.ofBaseline), String(r.lost), r.verified ? 'yes' : 'NO']));
}
