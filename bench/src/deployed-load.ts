import 'reflect-metadata';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { BusClient, connectToBus } from '@mandate/bus/client';
import { apiKeyEndpoint, echoEndpoint, oauth2TokenEndpoint, tokenForWorkloadEndpoint } from '@mandate/contracts';
import { signClientAssertion } from '@mandate/wat';
import { percentile } from './measure.js';
import { cpuPerRequestUs, cpuSnapshot } from './process-cpu.js';

/*
 * The deployed shape's own processes (deployed.ts starts them):
 *   `deployed-load.js responder <natsUrl> <subject>`: the raw NATS baseline's responder, alone in its process;
 *   `deployed-load.js load <natsUrl>`: the load generator. It reads one JSON command a line on stdin,
 *   runs it and answers one JSON line on stdout, so the bench's own process shares no CPU with the load.
 * A saturation command reads /proc/<pid>/stat of the processes it is given (and its own) around its
 * timed window alone, so warm-up and pre-signing are not counted.
 */

export const RAW_SUBJECT = 'bench.deployed.raw';

export type DeployedRowName = 'raw' | 'echo' | 'api-key' | 'm2m' | 'token-for-workload';

export interface RowSetup {
  tenant: string;
  workload: string;
  /** A WAT for the vault rows. */
  wat: string;
  /** The workload's private JWK, for a fresh client assertion per token-for-workload request. */
  privateJwk: Record<string, unknown>;
}

export type LoadCommand =
  | { kind: 'saturate'; row: DeployedRowName; concurrency: number; seconds: number; warmupSeconds: number; pids: Record<string, number> }
  | { kind: 'paced'; row: DeployedRowName; perSecond: number; seconds: number }
  | { kind: 'exit' };

export interface SaturateResult {
  requests: number;
  requestsPerSecond: number;
  /** µs of CPU per request, by process name (`load` is this process). */
  cpuUs: Record<string, number>;
}

export interface PacedResult {
  requests: number;
  p50Ms: number;
  p99Ms: number;
}

const body = new TextEncoder().encode(JSON.stringify({ message: 'hello from the benchmark' }));

async function responder(natsUrl: string, subject: string): Promise<void> {
  const nc = await connect({ servers: natsUrl, name: 'bench-deployed-responder' });
  nc.subscribe(subject, { callback: (_error, msg) => void msg.respond(msg.data) });
  await nc.flush();
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void nc.close().then(() => process.exit(0)));
}

async function load(natsUrl: string, setup: RowSetup): Promise<void> {
  // Connected as the services connect theirs, as bench/src/main.ts's client is.
  const nc = await connectToBus({ servers: natsUrl, name: 'bench-deployed-load' });
  const bus = new BusClient(nc, { defaultTimeoutMs: 30_000 });
  const privateJwk = setup.privateJwk as never;

  /** Unique assertions signed before the timed window (each lives 60 s); the window ends if they run out. */
  let assertions: string[] = [];
  const presign = async (count: number) => {
    assertions = [];
    for (let i = 0; i < count; i += 1) assertions.push(await signClientAssertion({ workload: setup.workload, privateJwk }));
  };
  const requestFor = (row: DeployedRowName): (() => Promise<void>) | undefined => {
    switch (row) {
      case 'raw':
        return async () => void (await nc.request(RAW_SUBJECT, body, { timeout: 30_000 }));
      case 'echo':
        return async () => void (await bus.request(echoEndpoint, { message: 'hello from the benchmark' }));
      case 'api-key':
        return async () => void (await bus.request(apiKeyEndpoint, { tenant: setup.tenant, workloadToken: setup.wat, provider: 'search' }));
      case 'm2m':
        return async () => void (await bus.request(oauth2TokenEndpoint, { tenant: setup.tenant, workloadToken: setup.wat, provider: 'reports', flow: 'M2M' }));
      case 'token-for-workload':
        return async () => {
          const clientAssertion = assertions.pop();
          if (clientAssertion === undefined) return;
          await bus.request(tokenForWorkloadEndpoint, { tenant: setup.tenant, workload: setup.workload, clientAssertion });
        };
    }
  };
  const outOfAssertions = (row: DeployedRowName) => row === 'token-for-workload' && assertions.length === 0;

  /** `concurrency` requests always outstanding until `until`; how many completed. */
  const closedLoop = async (row: DeployedRowName, concurrency: number, until: number) => {
    const request = requestFor(row)!;
    let completed = 0;
    const worker = async () => {
      while (performance.now() < until && !outOfAssertions(row)) {
        await request();
        completed += 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return completed;
  };

  const run = async (command: LoadCommand): Promise<SaturateResult | PacedResult | undefined> => {
    if (command.kind === 'exit') return undefined;
    if (command.kind === 'saturate') {
      if (command.row === 'token-for-workload') await presign(Math.ceil(4_000 * (command.seconds + command.warmupSeconds)));
      await closedLoop(command.row, command.concurrency, performance.now() + command.warmupSeconds * 1000);
      const pids = { ...command.pids, load: process.pid };
      const before = cpuSnapshot(pids);
      const started = performance.now();
      const requests = await closedLoop(command.row, command.concurrency, started + command.seconds * 1000);
      const elapsed = (performance.now() - started) / 1000;
      const after = cpuSnapshot(pids);
      return { requests, requestsPerSecond: requests / elapsed, cpuUs: cpuPerRequestUs(before, after, requests) };
    }
    // Open loop: requests leave on a steady schedule whether or not earlier ones have answered.
    const total = Math.round(command.perSecond * command.seconds);
    if (command.row === 'token-for-workload') await presign(total);
    const request = requestFor(command.row)!;
    const samples: number[] = [];
    const pending: Promise<void>[] = [];
    const started = performance.now();
    for (let i = 0; i < total; i += 1) {
      const wait = started + (i * 1000) / command.perSecond - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const sent = performance.now();
      pending.push(request().then(() => void samples.push(performance.now() - sent)));
    }
    await Promise.all(pending);
    samples.sort((a, b) => a - b);
    return { requests: samples.length, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99) };
  };

  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    const command = JSON.parse(line) as LoadCommand;
    const result = await run(command);
    if (command.kind === 'exit') break;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  await nc.close();
  // stdin stays open (and the process with it) until its parent goes: leave now.
  process.exit(0);
}

const [mode, natsUrl, arg] = process.argv.slice(2);
if (mode === 'responder') await responder(natsUrl!, arg!);
else if (mode === 'load') await load(natsUrl!, JSON.parse(arg!) as RowSetup);
