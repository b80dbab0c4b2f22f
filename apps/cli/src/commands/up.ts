import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import { connectToBus, declareStreams } from '@mandate/bus/client';
import { STREAMS } from '@mandate/contracts';
import { loadMasterKeys } from '@mandate/crypto';
import { bold, CliError, done, fail, green, step, table, warn } from '../output.js';
import { startEmbeddedNats, type EmbeddedNats } from '../embedded/nats-process.js';
import { discoverServices, startServiceProcess, type RunningServiceProcess } from '../embedded/service-processes.js';

export interface UpOptions {
  dataDir: string;
  natsPort: number;
  monitorPort: number;
  /** First Prometheus port; each service gets the next one. 0: no metrics endpoints. */
  metricsPort: number;
  services: boolean;
  appsDir?: string;
  logLevel: string;
}

const defaultAppsDir = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * `mandate up`: the whole system on the embedded default. Starts nats-server with JetStream
 * (data under the data dir), declares the streams, starts every service, waits until each
 * answers `$SRV.PING`, prints where things are, and on Ctrl-C stops everything in order.
 */
export async function up(options: UpOptions): Promise<void> {
  const dataDir = resolve(options.dataDir);
  const appsDir = options.appsDir ?? defaultAppsDir;
  const services = options.services ? await discoverServices(appsDir) : [];
  const running: RunningServiceProcess[] = [];
  let nats: EmbeddedNats | undefined;
  let nc: NatsConnection | undefined;
  let stopping = false;

  const stopAll = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    step(`${reason}: stopping services`);
    await Promise.all(running.map((service) => service.stop(15_000)));
    await nc?.close().catch(() => undefined);
    if (nats) {
      step('stopping nats-server');
      await nats.stop();
    }
    done(`stopped; data kept in ${dataDir}`);
  };

  /** A child that exits while nothing is stopping takes the whole system down, with exit code 1. */
  const stopAllWhenExits = (exited: Promise<number | null>, message: (code: number | null) => string, reason: string) =>
    void exited.then((code) => {
      if (stopping) return;
      fail(message(code));
      void stopAll(reason).then(() => process.exit(1));
    });

  // Last resort if this process dies of an uncaught error: do not leave children behind.
  process.once('exit', () => {
    for (const service of running) service.child.kill('SIGTERM');
    nats?.kill();
  });

  try {
    step(`data directory ${dataDir}`);
    const keys = await loadMasterKeys({ mode: 'embedded', dataDir });
    (keys.generated ? done : step)(`${keys.generated ? 'generated master key file' : 'master key file'} ${keys.source}`);

    step(`starting nats-server on 127.0.0.1:${options.natsPort}`);
    nats = await startEmbeddedNats({ dataDir, port: options.natsPort, monitorPort: options.monitorPort, log: warn });
    done(`${nats.version} ready at ${nats.url}`);

    nc = await connectToBus({ servers: nats.url, name: 'mandate-cli' });
    const streams = await declareStreams(nc, STREAMS);
    done(`streams: ${streams.map((s) => `${s.name} (${s.action})`).join(', ')}`);

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NATS_URL: nats.url,
      MANDATE_MODE: 'embedded',
      MANDATE_DATA_DIR: dataDir,
      LOG_LEVEL: options.logLevel,
    };
    services.forEach((app, index) => {
      step(`starting ${app.name}`);
      const port = options.metricsPort ? options.metricsPort + index : undefined;
      const service = startServiceProcess(app, env, port, (line) => process.stderr.write(`${line}\n`));
      running.push(service);
      stopAllWhenExits(service.exited, (code) => `${app.name} exited unexpectedly (code ${code})`, 'a service failed');
    });
    await Promise.all(running.map((service) => waitForPing(nc!, service)));
    stopAllWhenExits(nats.exited, () => 'nats-server exited unexpectedly', 'nats-server failed');

    const rows = [
      ['NATS', nats.url],
      ['NATS monitoring', nats.monitorUrl],
      ['JetStream data', nats.storeDir],
      ['Master keys', keys.source],
      ...running.map((s) => [`service ${s.app.name}`, `${green('ready')}${s.metricsUrl ? `  metrics ${s.metricsUrl}` : ''}`]),
      ...(jwksUrl(env, running) ? [['WAT JWKS', jwksUrl(env, running)!]] : []),
    ];
    process.stdout.write(`\n${bold('Mandate is up')} (embedded)\n${table(rows)}\n\nPress Ctrl-C to stop.\n`);
  } catch (error) {
    await stopAll('start-up failed');
    throw error;
  }

  await new Promise<void>((resolveStopped) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      void stopAll(signal).then(resolveStopped);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

/** Where the authorizer serves its WAT verification keys over HTTP, if it runs and serves them. */
function jwksUrl(env: NodeJS.ProcessEnv, running: RunningServiceProcess[]): string | undefined {
  if (!running.some((s) => s.app.name === 'authorizer')) return undefined;
  const port = env['AUTHORIZER_HTTP_PORT'] || '4480';
  return port === '0' ? undefined : `http://${env['AUTHORIZER_HTTP_HOST'] || '127.0.0.1'}:${port}/.well-known/jwks.json`;
}

async function waitForPing(nc: NatsConnection, service: RunningServiceProcess): Promise<void> {
  const client = new Svcm(nc as never).client();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
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
  throw new CliError(`${service.app.name} did not answer $SRV.PING within 30 s`);
}
