import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, delimiter } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';

export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server and deletes its store (unless `keepStore`). */
  stop(options?: { keepStore?: boolean }): Promise<void>;
  /** Kills the server the hard way (SIGKILL), to test what clients do when the bus vanishes. */
  kill(): Promise<void>;
}

/** Where `nats-server` is: `$NATS_SERVER_BIN`, the PATH, or the Debian package's /usr/sbin. */
export function findNatsServer(): string | undefined {
  const fromEnv = process.env['NATS_SERVER_BIN'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export function natsServerVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return (result.stdout || result.stderr).trim();
}

/**
 * A port free at this moment, below the kernel's ephemeral range. A port `listen(0)` hands out is
 * ephemeral: between our check and the child's listen (or a node's restart on the same port) any
 * outgoing connection may take it as its local port. A port below that range is taken only by a
 * listener that asks for it, and the random pick keeps parallel test files apart.
 */
export async function freePort(): Promise<number> {
  const [low, high] = portPool();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${low}-${high} after 200 tries`);
}

const handedOut = new Set<number>();

/** [low, high): from 15000 up to the ephemeral range's start (Linux: /proc/sys/net/ipv4/ip_local_port_range). */
function portPool(): [number, number] {
  let ephemeralLow = 32768;
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 16_000) ephemeralLow = first;
  } catch {
    // not Linux: 32768 is where the BSDs and Windows' default ranges start or above
  }
  return [15_000, ephemeralLow];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open && output().includes('Server is ready')) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nats-server did not become ready on port ${port} within ${timeoutMs} ms:\n${output()}`);
}

/**
 * Starts a real `nats-server -js` on a free loopback port with its own temporary store directory.
 * Pass `storeDir` to restart a server on data from an earlier one.
 */
export async function startNatsServer(options: { storeDir?: string; port?: number; args?: string[] } = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer();
  if (!binary) throw new Error('nats-server is not installed (apt-get install nats-server, or set NATS_SERVER_BIN)');
  const port = options.port ?? (await freePort());
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), 'mandate-nats-')));
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  try {
    await waitForPort(port, child, () => log, 15_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop({ keepStore = false } = {}) {
      await stopWith('SIGTERM');
      if (!keepStore && !options.storeDir) await rm(storeDir, { recursive: true, force: true });
    },
    async kill() {
      await stopWith('SIGKILL');
    },
  };
}
