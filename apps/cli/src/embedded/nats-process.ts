import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { findNatsServer, natsServerVersion } from '@mandate/testing';
import { CliError } from '../output.js';
import { PortInUseError } from './port-check.js';

export interface EmbeddedNats {
  url: string;
  pid: number;
  monitorUrl: string;
  storeDir: string;
  version: string;
  stop(): Promise<void>;
  /** Synchronous SIGTERM, for process-exit handlers. */
  kill(): void;
  exited: Promise<number | null>;
}

/**
 * Starts `nats-server -js` with its JetStream data under `<dataDir>/jetstream`, so a second
 * start finds the streams and KV buckets of the first. The caller has checked that its ports are free.
 */
export async function startEmbeddedNats(options: { dataDir: string; port: number; monitorPort: number; log: (line: string) => void }): Promise<EmbeddedNats> {
  const binary = findNatsServer();
  if (!binary) {
    throw new CliError(
      'nats-server is not installed. Install it with `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS), or set NATS_SERVER_BIN to its path.',
    );
  }
  const storeDir = join(options.dataDir, 'jetstream');
  await mkdir(storeDir, { recursive: true });
  const child: ChildProcess = spawn(
    binary,
    ['--name', 'mandate-embedded', '-a', '127.0.0.1', '-p', String(options.port), '-m', String(options.monitorPort), '-js', '-sd', storeDir],
    // Its own process group: a Ctrl-C in the terminal must not stop NATS under services still
    // draining; `mandate up` stops it after them.
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let ready = false;
  let recent = '';
  const onOutput = (chunk: Buffer) => {
    const text = chunk.toString();
    recent = (recent + text).slice(-4_000);
    if (text.includes('Server is ready')) ready = true;
    for (const line of text.split('\n')) if (line.includes('[ERR]') || line.includes('[WRN]')) options.log(line.trim());
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const deadline = Date.now() + 15_000;
  while (!ready) {
    if (child.exitCode !== null) throw takenPort(recent, options) ?? new CliError(`nats-server exited during start-up:\n${recent}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new CliError(`nats-server did not become ready within 15 s:\n${recent}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${options.port}`,
    pid: child.pid!,
    monitorUrl: `http://127.0.0.1:${options.monitorPort}`,
    storeDir,
    version: natsServerVersion(binary),
    exited,
    kill() {
      if (child.exitCode === null) child.kill('SIGTERM');
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The port nats-server could not listen on (taken after `mandate up` checked it), from its log. */
function takenPort(log: string, options: { port: number; monitorPort: number }): PortInUseError | undefined {
  const line = log.split('\n').find((l) => l.includes('address already in use'));
  if (!line) return undefined;
  const monitor = line.includes(`:${options.monitorPort}`);
  return new PortInUseError({ port: monitor ? options.monitorPort : options.port, host: '127.0.0.1', flag: monitor ? '--monitor-port' : '--nats-port' });
}
