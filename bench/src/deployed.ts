import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Svcm } from '@nats-io/services';
import { BusClient, connectToBus, declareStreams } from '@mandate/bus/client';
import { apiKeyEndpoint, AUDIT_STREAM, oauth2TokenEndpoint, providerCreateEndpoint, STREAMS, tokenForWorkloadEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { loadMasterKeys } from '@mandate/crypto';
import { startTestIdp } from '@mandate/testing/idp';
import { signClientAssertion } from '@mandate/wat';
// The very code `mandate up` starts nats-server and the services with (apps/cli/src/embedded), from its build.
import { discoverServices, startEmbeddedNats, startServiceProcess, type RunningServiceProcess } from '@mandate/cli/embedded';
import { RAW_SUBJECT, type DeployedRowName, type LoadCommand, type PacedResult, type RowSetup, type SaturateResult } from './deployed-load.js';
import { median } from './measure.js';
import { CLOCK_TICKS_PER_SECOND } from './process-cpu.js';
import { percent, printTable } from './table.js';

/*
 * The deployed shape (issue 20): the services as `mandate up` runs them, each its own Node process
 * from its dist, on one nats-server with JetStream; the load generator in a process of its own; the
 * raw NATS baseline's responder in a process of its own too. Rows in interleaved rounds, medians.
 */

const SERVICES = ['directory', 'authorizer', 'vault', 'audit', 'diagnostics'];
const CONCURRENCIES = [64, 256] as const;
export const DEPLOYED_PACED_RATE = 1_000;
const TENANT = 'bench-deployed';
const WORKLOAD = 'bench-agent';

const ROWS: { row: DeployedRowName; name: string; rawTarget?: number; p99TargetMs?: number }[] = [
  { row: 'raw', name: 'raw NATS request/reply (responder process)' },
  { row: 'echo', name: 'diagnostics echo', rawTarget: 0.8 },
  { row: 'api-key', name: 'vault api-key', rawTarget: 0.5, p99TargetMs: 5 },
  { row: 'm2m', name: 'vault oauth2-token M2M (cached)', rawTarget: 0.5, p99TargetMs: 5 },
  { row: 'token-for-workload', name: 'authorizer token-for-workload (fresh assertion)', rawTarget: 0.25, p99TargetMs: 5 },
];

export interface DeployedRow {
  row: DeployedRowName;
  name: string;
  /** Median across rounds, by concurrency. */
  requestsPerSecond: Record<number, number>;
  /** req/s at 256 over raw's at 256. */
  rawRatio: number;
  pacedP50Ms: number;
  pacedP99Ms: number;
  /** µs of CPU per request by process at concurrency 256, medians across rounds. */
  cpuUs: Record<string, number>;
  rawTarget?: number;
  p99TargetMs?: number;
  throughputVerdict?: 'met' | 'missed';
  p99Verdict?: 'met' | 'missed';
}

export interface DeployedOptions {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  pacedSeconds: number;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const appsDir = join(here, '..', '..', 'apps');
const loadEntry = join(here, 'deployed-load.js');

/** A child process that prints `ready` when it is; then answers one JSON line per command. */
function startChild(args: string[], name: string): Promise<{ child: ChildProcess; lines: Interface }> {
  const child = spawn(process.execPath, [loadEntry, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited (code ${code})`)));
    lines.once('line', (line) => (line === 'ready' ? resolve({ child, lines }) : reject(new Error(`${name}: ${line}`))));
  });
}

async function waitForPing(nc: NatsConnection, name: string): Promise<void> {
  const client = new Svcm(nc as never).client();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      for await (const _pong of await client.ping(`mandate-${name}`)) return;
    } catch {
      // Not answering yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not answer $SRV.PING within 30 s`);
}

export async function benchDeployed(options: DeployedOptions): Promise<DeployedRow[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-deployed-'));
  const port = 14_000 + Math.floor(Math.random() * 1_000);
  const children: ChildProcess[] = [];
  const services: RunningServiceProcess[] = [];
  let nats: Awaited<ReturnType<typeof startEmbeddedNats>> | undefined;
  let nc: NatsConnection | undefined;
  const idp = await startTestIdp();
  try {
    // As `mandate up`: master keys, nats-server -js under the data dir, the streams, then each service.
    await loadMasterKeys({ mode: 'embedded', dataDir });
    nats = await startEmbeddedNats({ dataDir, port, monitorPort: port + 1, log: (line) => process.stderr.write(`nats-server ${line}\n`) });
    nc = await connectToBus({ servers: nats.url, name: 'bench-deployed-setup' });
    await declareStreams(nc, STREAMS);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NATS_URL: nats.url,
      MANDATE_MODE: 'embedded',
      MANDATE_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      AUTHORIZER_HTTP_PORT: '0',
      // The limiter still runs on every release (it is part of what the rows measure) but never refuses one, as in vault.ts.
      VAULT_RATE_LIMIT_PER_SECOND: '1000000',
      VAULT_RATE_LIMIT_BURST: '1000000',
    };
    const apps = (await discoverServices(appsDir)).filter((app) => SERVICES.includes(app.name));
    for (const [index, app] of apps.entries()) {
      process.stderr.write(`• starting ${app.name} (its own process)\n`);
      // Metrics on, as `mandate up` has them (one port per service), on ports of the bench's own.
      services.push(startServiceProcess(app, env, port + 10 + index, (line) => process.stderr.write(`${line}\n`), 'json'));
      await waitForPing(nc, app.name);
    }

    const bus = new BusClient(nc, { defaultTimeoutMs: 30_000 });
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'EdDSA' };
    const privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'k1', alg: 'EdDSA' };
    await bus.request(workloadCreateEndpoint, { tenant: TENANT, name: WORKLOAD, publicKeys: { keys: [publicJwk as never] } });
    const wat = (await bus.request(tokenForWorkloadEndpoint, { tenant: TENANT, workload: WORKLOAD, clientAssertion: await signClientAssertion({ workload: WORKLOAD, privateJwk }) })).token;
    await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: TENANT, name: 'reports', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: [WORKLOAD] });
    await bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: TENANT, name: 'search', apiKey: 'bench-api-key', allowedWorkloads: [WORKLOAD] });
    // The first M2M token comes from the IdP; every timed one is the vault's cached copy.
    await bus.request(oauth2TokenEndpoint, { tenant: TENANT, workloadToken: wat, provider: 'reports', flow: 'M2M' });
    await bus.request(apiKeyEndpoint, { tenant: TENANT, workloadToken: wat, provider: 'search' });

    const responder = await startChild(['responder', nats.url, RAW_SUBJECT], 'raw responder');
    children.push(responder.child);
    const setup: RowSetup = { tenant: TENANT, workload: WORKLOAD, wat, privateJwk };
    const loader = await startChild(['load', nats.url, JSON.stringify(setup)], 'load generator');
    children.push(loader.child);
    const replies = loader.lines[Symbol.asyncIterator]();
    const send = async <T>(command: LoadCommand): Promise<T> => {
      loader.child.stdin!.write(`${JSON.stringify(command)}\n`);
      const reply = await replies.next();
      if (reply.done) throw new Error('the load generator closed its output');
      return JSON.parse(reply.value) as T;
    };

    const pids: Record<string, number> = { 'nats-server': nats.pid, ...Object.fromEntries(services.map((s) => [s.app.name, s.child.pid!])), responder: responder.child.pid! };
    const samples = ROWS.map(() => ({ rates: new Map<number, number[]>(CONCURRENCIES.map((c) => [c, []])), cpu: [] as Record<string, number>[], p50: [] as number[], p99: [] as number[] }));
    for (let round = 1; round <= options.rounds; round += 1) {
      process.stderr.write(`• deployed round ${round}/${options.rounds}\n`);
      for (const [i, { row }] of ROWS.entries()) {
        for (const concurrency of CONCURRENCIES) {
          await auditDrained(nc);
          const result = await send<SaturateResult>({ kind: 'saturate', row, concurrency, seconds: options.seconds, warmupSeconds: options.warmupSeconds, pids });
          samples[i]!.rates.get(concurrency)!.push(result.requestsPerSecond);
          if (concurrency === 256) samples[i]!.cpu.push(result.cpuUs);
        }
        // The saturation row leaves the audit service a backlog to chain: paced latency is measured once it is gone.
        await auditDrained(nc);
        const paced = await send<PacedResult>({ kind: 'paced', row, perSecond: DEPLOYED_PACED_RATE, seconds: options.pacedSeconds });
        samples[i]!.p50.push(paced.p50Ms);
        samples[i]!.p99.push(paced.p99Ms);
      }
    }
    loader.child.stdin!.write(`${JSON.stringify({ kind: 'exit' } satisfies LoadCommand)}\n`);

    const rawAt256 = median(samples[0]!.rates.get(256)!);
    return ROWS.map((spec, i) => {
      const s = samples[i]!;
      const requestsPerSecond = Object.fromEntries(CONCURRENCIES.map((c) => [c, median(s.rates.get(c)!)]));
      const rawRatio = requestsPerSecond[256]! / rawAt256;
      const pacedP99Ms = median(s.p99);
      const cpuUs = Object.fromEntries(Object.keys(s.cpu[0]!).map((name) => [name, median(s.cpu.map((c) => c[name]!))]));
      return {
        ...spec,
        requestsPerSecond,
        rawRatio,
        pacedP50Ms: median(s.p50),
        pacedP99Ms,
        cpuUs,
        ...(spec.rawTarget === undefined ? {} : { throughputVerdict: rawRatio >= spec.rawTarget ? ('met' as const) : ('missed' as const) }),
        ...(spec.p99TargetMs === undefined ? {} : { p99Verdict: pacedP99Ms < spec.p99TargetMs ? ('met' as const) : ('missed' as const) }),
      };
    });
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(services.map((service) => service.stop(15_000)));
    await nc?.close().catch(() => undefined);
    await nats?.stop();
    await idp.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Until the audit intake (a work queue: a record leaves once chained) is empty, so one row's backlog does not load the next. */
async function auditDrained(nc: NatsConnection, timeoutMs = 120_000): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + timeoutMs;
  while ((await jsm.streams.info(AUDIT_STREAM.name)).state.messages > 0) {
    if (Date.now() > deadline) throw new Error(`the audit service did not chain its backlog within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function printDeployed(rows: DeployedRow[], options: DeployedOptions): void {
  process.stdout.write(`\nDeployed shape (${process.version}; services, load generator and raw responder each their own process; ${options.rounds} interleaved rounds of ${options.seconds} s, medians)\n`);
  printTable(
    ['', 'req/s @64', 'req/s @256', '/ raw @256', `p50 ms @${DEPLOYED_PACED_RATE}/s`, `p99 ms @${DEPLOYED_PACED_RATE}/s`, 'targets'],
    rows.map((r) => [
      r.name,
      r.requestsPerSecond[64]!.toFixed(0),
      r.requestsPerSecond[256]!.toFixed(0),
      r.row === 'raw' ? '—' : percent(r.rawRatio),
      r.pacedP50Ms.toFixed(2),
      r.pacedP99Ms.toFixed(2),
      [
        r.rawTarget === undefined ? '' : `≥ ${r.rawTarget * 100}% of raw: ${r.throughputVerdict}`,
        r.p99TargetMs === undefined ? '' : `p99 < ${r.p99TargetMs} ms: ${r.p99Verdict}`,
      ]
        .filter(Boolean)
        .join('; ') || '—',
    ]),
  );
  const processes = Object.keys(rows[0]!.cpuUs);
  process.stdout.write(`CPU µs per request by process at concurrency 256 (/proc/<pid>/stat utime+stime, ${CLOCK_TICKS_PER_SECOND} ticks/s)\n`);
  printTable(
    ['', ...processes, 'total'],
    rows.map((r) => [r.name, ...processes.map((p) => r.cpuUs[p]!.toFixed(1)), Object.values(r.cpuUs).reduce((a, b) => a + b, 0).toFixed(1)]),
  );
}
