import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { AckedPublisher, connectToBus } from '@mandate/bus';
import { AUDIT_STREAM, AUDIT_TRAIL_STREAM, auditSubject, type AuditRecord, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { findNatsServer, freePort } from '@mandate/testing';
import { TrailRepository } from '@mandate/audit/module';
import { printTable } from './table.js';

/*
 * `npm run bench -- --soak [--records=10000000] [--tenants=4] [--rate=N]` (not in CI): the audit trail under
 * millions of records, as `mandate up` runs it: nats-server and the audit service each in a
 * process of their own, the load from this one. Reports bytes on disk per record (everything
 * under the data dirs: every stream, every bucket, the audit service's keys), nats-server and
 * audit-service resident memory at 1, 5 and 10 million records, and records/s over the run.
 * Targets (issue 20): at most 400 bytes on disk per record, nats-server memory within 2x of its
 * value at 1 million up to 10 million, no drop in records/s over the run. `--rate` publishes that
 * many records a second (all tenants together) instead of as fast as they are chained: at a low
 * rate batches are small, and what the run shows is how many records a stored fragment holds.
 */

/** Acknowledgements outstanding at once, as a busy fleet of services would have. */
const PUBLISH_WINDOW = 512;
/** Publishing pauses while the intake holds more than this (chaining is what is measured, not a backlog). */
const MAX_BACKLOG = 50_000;
const SAMPLE_MS = 5_000;
const END_SAMPLE_MS = 100;
const BYTES_PER_RECORD_TARGET = 400;
const MEMORY_GROWTH_TARGET = 2;
/** Records/s in the last tenth of the run at least this share of the second tenth's (the first warms up). */
const RATE_KEPT_TARGET = 0.9;

export interface SoakOptions {
  records: number;
  tenants: number;
  /** Records a second, all tenants together; undefined: as fast as they are chained. */
  rate?: number;
  json: boolean;
}

interface Sample {
  seconds: number;
  published: number;
  chained: number;
  backlog: number;
  recordsPerSecond: number;
  natsRssBytes: number;
  auditRssBytes: number;
  diskBytes: number;
}

interface Checkpoint extends Sample {
  bytesPerRecord: number;
  streams: { name: string; messages: number; bytes: number }[];
}

export function soakOptions(argv: readonly string[]): SoakOptions {
  const flag = <T extends number | undefined>(name: string, fallback: T): number | T => {
    const raw = argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
    if (raw === undefined) return fallback;
    const value = Number(raw.replaceAll('_', ''));
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`--${name} must be a positive whole number, got ${raw}`);
    return value;
  };
  const rate = flag('rate', undefined);
  return { records: flag('records', 10_000_000), tenants: flag('tenants', 4), ...(rate !== undefined ? { rate } : {}), json: argv.includes('--json') };
}

/** 1, 5 and 10 million (those the run reaches), or tenths of a smaller run; always the end. */
function checkpointsFor(records: number): number[] {
  const millions = [1_000_000, 5_000_000, 10_000_000].filter((n) => n < records);
  const points = millions.length > 0 ? millions : [Math.ceil(records / 10), Math.ceil(records / 2)];
  return [...new Set([...points, records])];
}

export async function runSoak(options: SoakOptions): Promise<void> {
  const root = join(import.meta.dirname, '..', '..');
  const auditEntry = join(root, 'apps', 'audit', 'dist', 'main.js');
  if (!existsSync(auditEntry)) throw new Error(`${auditEntry} is missing: run \`npm run build\``);
  const binary = findNatsServer();
  if (!binary) throw new Error('nats-server is not installed');
  const storeDir = await mkdtemp(join(tmpdir(), 'mandate-soak-nats-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-soak-data-'));
  const port = await freePort();
  const nats = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
  const natsUrl = `nats://127.0.0.1:${port}`;
  let audit: ChildProcess | undefined;
  let nc: NatsConnection | undefined;
  try {
    nc = await connectWhenUp(natsUrl);
    audit = spawn(process.execPath, [auditEntry], {
      cwd: root,
      env: { ...process.env, NATS_URL: natsUrl, MANDATE_DATA_DIR: dataDir, AUDIT_WRITER_ID: 'soak', LOG_LEVEL: 'warn', NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.consumers.list(AUDIT_STREAM.name).next()).length > 0, 60_000, 'the audit service did not start consuming');
    const repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 });
    const tenants = Array.from({ length: options.tenants }, (_, i) => `soak-${i}` as TenantId);
    const chained = async () => (await Promise.all(tenants.map((t) => repository.chainHead(t)))).reduce((sum, head) => sum + (head?.value.sequence ?? 0), 0);
    const result = await soak(nc, jsm, options, tenants, chained, { nats: nats.pid!, audit: audit.pid!, dirs: [storeDir, dataDir] });
    report(options, result);
  } finally {
    await nc?.close().catch(() => undefined);
    audit?.kill('SIGTERM');
    if (audit) await exited(audit, 10_000);
    nats.kill('SIGTERM');
    await exited(nats, 10_000);
    await rm(storeDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function soak(
  nc: NatsConnection,
  jsm: JetStreamManager,
  options: SoakOptions,
  tenants: readonly TenantId[],
  chained: () => Promise<number>,
  watched: { nats: number; audit: number; dirs: string[] },
): Promise<{ samples: Sample[]; checkpoints: Checkpoint[]; seconds: number }> {
  const publisher = new AckedPublisher(nc, 30_000);
  const encoder = new TextEncoder();
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  let published = 0;
  let backlog = 0;
  let failed: unknown;
  const publishing = Promise.all(
    Array.from({ length: PUBLISH_WINDOW }, async () => {
      while (published < options.records && failed === undefined) {
        if (backlog > MAX_BACKLOG) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const early = options.rate === undefined ? 0 : (published / options.rate) * 1000 - (performance.now() - started);
        if (early > 0) {
          await new Promise((r) => setTimeout(r, early));
          continue;
        }
        const record = soakRecord(tenants[published % tenants.length]!, published);
        published += 1;
        await publisher.publish(auditSubject(record.tenant, record.service, record.action), encoder.encode(JSON.stringify(record)), { msgID: record.id });
      }
    }),
  ).catch((error: unknown) => (failed = error));
  const backlogTimer = setInterval(() => {
    void jsm.streams.info(AUDIT_STREAM.name).then(
      (info) => (backlog = info.state.messages),
      () => undefined,
    );
  }, 250);

  const samples: Sample[] = [];
  const checkpoints: Checkpoint[] = [];
  const due = checkpointsFor(options.records);
  let previous = { seconds: 0, chained: 0 };
  try {
    for (;;) {
      // Once everything is published, the end is looked for every 100 ms: a 5 s step would add up
      // to 5 s to the last tenth (the last records wait out the chain's linger, at most a second).
      await new Promise((r) => setTimeout(r, published >= options.records ? END_SAMPLE_MS : SAMPLE_MS));
      if (failed !== undefined) throw failed;
      const sample = await measure(watched, { seconds: elapsed(), published, chained: await chained(), backlog }, previous);
      samples.push(sample);
      previous = sample;
      process.stderr.write(
        `• soak ${sample.seconds.toFixed(0)} s: ${sample.chained.toLocaleString('en')} chained, ${sample.recordsPerSecond.toFixed(0)}/s, backlog ${sample.backlog}, nats ${mib(sample.natsRssBytes)}, audit ${mib(sample.auditRssBytes)}, disk ${mib(sample.diskBytes)}\n`,
      );
      if (due.length > 0 && sample.chained >= due[0]!) {
        while (due.length > 0 && sample.chained >= due[0]!) due.shift();
        const streams = [];
        for await (const info of jsm.streams.list()) streams.push({ name: info.config.name, messages: info.state.messages, bytes: info.state.bytes });
        checkpoints.push({ ...sample, bytesPerRecord: sample.diskBytes / sample.chained, streams });
      }
      if (due.length === 0) break;
    }
  } finally {
    clearInterval(backlogTimer);
    await publishing;
    publisher.close();
  }
  return { samples, checkpoints, seconds: elapsed() };
}

async function measure(
  watched: { nats: number; audit: number; dirs: string[] },
  counts: { seconds: number; published: number; chained: number; backlog: number },
  previous: { seconds: number; chained: number },
): Promise<Sample> {
  const [natsRssBytes, auditRssBytes, ...dirs] = await Promise.all([rss(watched.nats), rss(watched.audit), ...watched.dirs.map(diskUsage)]);
  return {
    ...counts,
    recordsPerSecond: (counts.chained - previous.chained) / (counts.seconds - previous.seconds),
    natsRssBytes: natsRssBytes!,
    auditRssBytes: auditRssBytes!,
    diskBytes: dirs.reduce((a, b) => a + b, 0),
  };
}

/** A record shaped like the authorizer's and the vault's: a user, a provider, scopes, a trace. */
function soakRecord(tenant: TenantId, n: number): AuditRecord {
  return {
    id: randomUUID(),
    tenant,
    service: 'vault',
    action: 'api-key-release',
    outcome: 'succeeded',
    occurredAt: new Date().toISOString(),
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    actor: { workload: 'soak-agent', user: { iss: 'https://idp.example', sub: `user-${n % 10_000}` } },
    target: { provider: 'crm', scopes: ['crm:read'] },
  };
}

/** Resident memory of a process, from /proc (Linux). */
async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kib ? Number(kib) * 1024 : 0;
}

/** Bytes allocated on disk under a directory (blocks, as `du` counts them). */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    const info = await stat(join(entry.parentPath, entry.name)).catch(() => undefined);
    if (info?.isFile()) total += info.blocks * 512;
  }
  return total;
}

async function connectWhenUp(url: string): Promise<NatsConnection> {
  let last: unknown;
  for (let i = 0; i < 100; i += 1) {
    try {
      return await connectToBus({ servers: url, name: 'soak-load' });
    } catch (error) {
      last = error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('nats-server did not come up', { cause: last });
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, failure: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(failure);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** Records/s of each tenth of the run, from the samples (a tenth without a sample reads 0). */
function ratesByTenth(samples: readonly Sample[], records: number): number[] {
  const tenths: number[] = [];
  for (let k = 1; k <= 10; k += 1) {
    const from = samples.findLast((s) => s.chained <= ((k - 1) * records) / 10) ?? { seconds: 0, chained: 0 };
    const to = samples.find((s) => s.chained >= (k * records) / 10) ?? samples.at(-1);
    tenths.push(to && to.seconds > from.seconds ? (to.chained - from.chained) / (to.seconds - from.seconds) : 0);
  }
  return tenths;
}

function report(options: SoakOptions, { samples, checkpoints, seconds }: { samples: Sample[]; checkpoints: Checkpoint[]; seconds: number }): void {
  const last = checkpoints.at(-1)!;
  const first = checkpoints.find((c) => c.chained >= 1_000_000) ?? checkpoints[0]!;
  const tenths = ratesByTenth(samples, options.records);
  const peakNats = Math.max(...samples.map((s) => s.natsRssBytes));
  const verdict = {
    bytesPerRecord: last.bytesPerRecord <= BYTES_PER_RECORD_TARGET ? 'met' : 'missed',
    natsMemoryFlat: last.natsRssBytes <= MEMORY_GROWTH_TARGET * first.natsRssBytes ? 'met' : 'missed',
    recordsPerSecondKept: tenths[9]! >= RATE_KEPT_TARGET * tenths[1]! ? 'met' : 'missed',
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ node: process.version, cpus: cpus().length, memoryBytes: totalmem(), ...options, seconds, checkpoints, tenths, samples, verdict }, null, 2)}\n`);
    return;
  }
  const rate = options.rate === undefined ? '' : `, ${options.rate.toLocaleString('en')} a second`;
  process.stdout.write(`\nMandate soak: ${options.records.toLocaleString('en')} audit records into ${options.tenants} tenants${rate}, ${seconds.toFixed(0)} s (${process.version}, ${cpus().length} cores)\n`);
  printTable(
    ['records chained', 'disk (all stores)', 'bytes/record', 'nats-server RSS', 'audit RSS', 'records/s (last 5 s)'],
    checkpoints.map((c) => [c.chained.toLocaleString('en'), mib(c.diskBytes), c.bytesPerRecord.toFixed(0), mib(c.natsRssBytes), mib(c.auditRssBytes), c.recordsPerSecond.toFixed(0)]),
  );
  process.stdout.write(`\nAt ${last.chained.toLocaleString('en')} records, by stream:\n`);
  printTable(['stream', 'messages', 'bytes', 'bytes/record'], last.streams.map((s) => [s.name, String(s.messages), mib(s.bytes), (s.bytes / last.chained).toFixed(0)]));
  const messages = last.streams.find((s) => s.name === AUDIT_TRAIL_STREAM.name)?.messages;
  if (messages) process.stdout.write(`\nrecords per message of the trail's stream (fragments and digests): ${(last.chained / messages).toFixed(1)}\n`);
  process.stdout.write(`\nrecords/s by tenth of the run: ${tenths.map((r) => r.toFixed(0)).join(', ')}\n`);
  process.stdout.write(`nats-server peak RSS: ${mib(peakNats)}\n`);
  process.stdout.write(`bytes on disk per record target (<= ${BYTES_PER_RECORD_TARGET}): ${verdict.bytesPerRecord}\n`);
  process.stdout.write(`nats-server memory target (<= ${MEMORY_GROWTH_TARGET}x its value at ${first.chained.toLocaleString('en')}): ${verdict.natsMemoryFlat}\n`);
  process.stdout.write(`records/s target (last tenth >= ${RATE_KEPT_TARGET * 100}% of the second): ${verdict.recordsPerSecondKept}\n`);
}
