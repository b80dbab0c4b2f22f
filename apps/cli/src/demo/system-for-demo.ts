import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../bus.js';
import { CliError } from '../output.js';

/*
 * When nothing answers at the NATS URL, `mandate demo` starts the system itself: `mandate up` as
 * a child in its own process group (so a Ctrl-C reaches the demo alone, which then stops it once,
 * letting each service drain), its output in a log file rather than over the demo's.
 */

const cliEntry = fileURLToPath(new URL('../main.js', import.meta.url));
const READY = 'Press Ctrl-C to stop.';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const START_TIMEOUT_MS = 90_000;

export interface SystemForDemo {
  stop(): Promise<void>;
}

/** The NATS port of a URL `mandate up` could serve (this machine, one server), else undefined. */
export function localNatsPort(natsUrl: string): number | undefined {
  if (natsUrl.includes(',') || !URL.canParse(natsUrl)) return undefined;
  const url = new URL(natsUrl);
  return url.protocol === 'nats:' && LOOPBACK.has(url.hostname) && !url.username ? Number(url.port || 4222) : undefined;
}

export async function startSystemForDemo(options: { dataDir: string; natsPort: number; logFile: string }): Promise<SystemForDemo> {
  await mkdir(dirname(options.logFile), { recursive: true });
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child = spawn(process.execPath, [cliEntry, 'up', '--data-dir', options.dataDir, '--nats-port', String(options.natsPort)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve) => {
    const collect = (chunk: Buffer) => {
      log.write(chunk);
      if (output.length < 64 * 1024) output += chunk.toString('utf8');
      if (output.includes(READY)) resolve();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
  });
  const lastLine = () => output.trim().split('\n').at(-1) ?? '';
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'slow'>((resolve) => setTimeout(() => resolve('slow'), START_TIMEOUT_MS).unref()),
  ]);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
    log.end();
  };
  if (outcome !== 'ready') {
    await stop();
    throw new CliError(`could not start the system (mandate up ${outcome === 'slow' ? 'was not ready in time' : 'stopped'}: ${lastLine()}); its output is in ${options.logFile}`, EXIT.unavailable);
  }
  return { stop };
}
