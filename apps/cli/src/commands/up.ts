import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import { connectToBus, declareStreams } from '@mandate/bus/client';
import { STREAMS } from '@mandate/contracts';
import { loadMasterKeys } from '@mandate/crypto';
import { bold, CliError, done, fail, green, step, table, warn } from '../output.js';
import { lockDataDir } from '../embedded/data-dir-lock.js';
import { startEmbeddedNats, type EmbeddedNats } from '../embedded/nats-process.js';
import { checkPortsFree } from '../embedded/port-check.js';
import { discoverServices, startServiceProcess, type LogFormat, type RunningServiceProcess } from '../embedded/service-processes.js';
import { HTTP_LISTENERS, httpEnv, localUrl, portPlan, type PortOptions } from '../embedded/service-ports.js';

export interface UpOptions extends PortOptions {
  dataDir: string;
  services: boolean;
  appsDir?: string;
  logLevel: string;
  logFormat?: LogFormat;
}

const defaultAppsDir = fileURLToPath(new URL('../../../', import.meta.url));
const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
/** A service's own drain waits SHUTDOWN_GRACE_MS for its requests; this long more and it is killed. */
const DRAIN_MARGIN_MS = 5_000;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function port(value: string): number {
  const parsed = value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return parsed;
}

export function addUpCommand(program: Command): void {
  const command = program
    .command('up')
    .description('start the whole system on the embedded default (nats-server with JetStream, every service); Ctrl-C stops it')
    .addOption(new Option('--data-dir <dir>', 'where the embedded system keeps its data').env('MANDATE_DATA_DIR').default('.mandate'))
    .addOption(new Option('--nats-port <port>', 'NATS client port').argParser(port).default(4222))
    .addOption(new Option('--monitor-port <port>', 'NATS HTTP monitoring port').argParser(port).default(8222))
    .addOption(new Option('--metrics-port <port>', 'first Prometheus port (one per service); 0 disables').argParser(port).default(9464));
  for (const listener of HTTP_LISTENERS) {
    const what = { authorizer: "the authorizer's HTTP port (WAT JWKS)", consent: 'the consent pages', gateway: "the gateway's MCP endpoints" }[listener.service];
    command.addOption(new Option(`${listener.flag} <port>`, `${what}; 0 disables`).env(listener.portVariable).argParser(port).default(listener.defaultPort));
  }
  command
    .addOption(new Option('--no-services', 'start NATS and the streams only'))
    .addOption(new Option('--log-level <level>', 'service log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
    .addOption(
      new Option('--log-format <format>', 'service logs as readable lines with their fields (pretty) or as JSON lines (json); default: pretty on a terminal, json otherwise')
        .choices(['pretty', 'json'])
        .env('MANDATE_LOG_FORMAT'),
    )
    .action((options: UpOptions) => up(options));
}

/**
 * `mandate up`: the whole system on the embedded default. Takes the data directory, checks every
 * port, starts nats-server with JetStream (data under the data dir), declares the streams, starts
 * every service, waits until each answers `$SRV.PING`, prints where things are, and on Ctrl-C
 * stops everything in order: the services (each drains), then NATS.
 */
export async function up(options: UpOptions): Promise<void> {
  const dataDir = resolve(options.dataDir);
  const appsDir = options.appsDir ?? defaultAppsDir;
  const services = options.services ? await discoverServices(appsDir) : [];
  step(`data directory ${dataDir}`);
  const lock = await lockDataDir(dataDir, warn);
  const running: RunningServiceProcess[] = [];
  const drainLimitMs = (Number(process.env['SHUTDOWN_GRACE_MS']) || 10_000) + DRAIN_MARGIN_MS;
  let nats: EmbeddedNats | undefined;
  let nc: NatsConnection | undefined;
  let stopped: Promise<void> | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let afterStartUp: ((signal: NodeJS.Signals) => void) | undefined;

  const stopAll = (reason: string) =>
    (stopped ??= (async () => {
      if (running.length > 0) step(`${reason}: stopping services (each finishes the requests it is handling, ${drainLimitMs / 1000} s at most)`);
      const outcomes = await Promise.all(running.map((service) => service.stop(drainLimitMs)));
      outcomes.forEach((outcome, index) => outcome === 'killed' && warn(`${running[index]!.app.name} did not stop within ${drainLimitMs / 1000} s: killed`));
      await nc?.close().catch(() => undefined);
      if (nats) {
        step('stopping nats-server');
        await nats.stop();
      }
      await lock.release();
      done(`stopped; data kept in ${dataDir}`);
    })());

  /** A child that exits while nothing is stopping takes the whole system down, with exit code 1. */
  const stopAllWhenExits = (exited: Promise<number | null>, message: (code: number | null) => string, reason: string) =>
    void exited.then((code) => {
      if (stopped) return;
      fail(message(code));
      void stopAll(reason).then(() => process.exit(1));
    });

  // Last resort if this process dies of an uncaught error: do not leave children or the lock behind.
  process.once('exit', () => {
    for (const service of running) service.child.kill('SIGTERM');
    nats?.kill();
    lock.releaseSync();
  });

  // The children are in process groups of their own, so a Ctrl-C reaches this process alone,
  // during start-up too: it stops the start at the next step and everything started so far.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopped || interrupted) {
      warn(`second ${signal}: killing the services without waiting for them to drain`);
      for (const service of running) service.kill();
      if (!stopped) process.exit(130);
    } else if (afterStartUp) {
      afterStartUp(signal);
    } else {
      interrupted = signal;
      step(`${signal}: stopping after the current start-up step`);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  const checkpoint = () => {
    if (interrupted) throw new StartInterrupted(interrupted);
  };

  try {
    await checkPortsFree(portPlan(options, services.map((s) => s.name), process.env));
    const keys = await loadMasterKeys({ mode: 'embedded', dataDir });
    (keys.generated ? done : step)(`${keys.generated ? 'generated master key file' : 'master key file'} ${keys.source}`);
    checkpoint();

    step(`starting nats-server on 127.0.0.1:${options.natsPort}`);
    nats = await startEmbeddedNats({ dataDir, port: options.natsPort, monitorPort: options.monitorPort, log: warn });
    await lock.recordNats(nats.pid);
    done(`${nats.version} ready at ${nats.url}`);
    checkpoint();

    nc = await connectToBus({ servers: nats.url, name: 'mandate-cli' });
    const streams = await declareStreams(nc, STREAMS);
    done(`streams: ${streams.map((s) => `${s.name} (${s.action})`).join(', ')}`);
    checkpoint();

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...httpEnv(options, process.env),
      NATS_URL: nats.url,
      MANDATE_MODE: 'embedded',
      MANDATE_DATA_DIR: dataDir,
      LOG_LEVEL: options.logLevel,
    };
    services.forEach((app, index) => {
      step(`starting ${app.name}`);
      const metricsPort = options.metricsPort ? options.metricsPort + index : undefined;
      const service = startServiceProcess(app, env, metricsPort, (line) => process.stderr.write(`${line}\n`), options.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json'));
      running.push(service);
      stopAllWhenExits(service.exited, (code) => `${app.name} exited unexpectedly (code ${code})`, 'a service failed');
    });
    await Promise.all(running.map((service) => waitForPing(nc!, service, () => interrupted !== undefined)));
    checkpoint();
    stopAllWhenExits(nats.exited, () => 'nats-server exited unexpectedly', 'nats-server failed');

    const jwks = running.some((s) => s.app.name === 'authorizer') && options.authorizerPort !== 0 ? `${localUrl(env['AUTHORIZER_HTTP_HOST'] || '127.0.0.1', options.authorizerPort)}/.well-known/jwks.json` : undefined;
    const rows = [
      ['NATS', nats.url],
      ['NATS monitoring', nats.monitorUrl],
      ['JetStream data', nats.storeDir],
      ['Master keys', keys.source],
      ...running.map((s) => [`service ${s.app.name}`, `${green('ready')}${s.metricsUrl ? `  metrics ${s.metricsUrl}` : ''}`]),
      ...(jwks ? [['WAT JWKS', jwks]] : []),
    ];
    // The CLI and the examples talk to the default URL: on another port, they must be told.
    const exportHint = nats.url === DEFAULT_NATS_URL ? '' : `\nIn other terminals, for the CLI and agents:\n  export NATS_URL=${nats.url}\n`;
    process.stdout.write(`\n${bold('Mandate is up')} (embedded)\n${table(rows)}\n${exportHint}\nPress Ctrl-C to stop.\n`);
  } catch (error) {
    await stopAll(interrupted ?? 'start-up failed');
    if (!(error instanceof StartInterrupted)) throw error;
    process.exitCode = 130;
    return;
  }

  await new Promise<void>((resolveStopped) => {
    afterStartUp = (signal) => void stopAll(signal).then(resolveStopped);
  });
}

/** A Ctrl-C during start-up: everything started so far is stopped, and `mandate up` ends with 130. */
class StartInterrupted extends Error {
  override readonly name = 'StartInterrupted';
}

async function waitForPing(nc: NatsConnection, service: RunningServiceProcess, interrupted: () => boolean): Promise<void> {
  const client = new Svcm(nc as never).client();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !interrupted()) {
    if (service.child.exitCode !== null) throw new CliError(`${service.app.name} exited during start-up (code ${service.child.exitCode})`);
    try {
      for await (const _pong of await client.ping(`mandate-${service.app.name}`)) {
        done(`${service.app.name} answers $SRV.PING`);
        return;
      }
    } catch {
      // No responders yet: the service is still starting.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!interrupted()) throw new CliError(`${service.app.name} did not answer $SRV.PING within 30 s`);
}
