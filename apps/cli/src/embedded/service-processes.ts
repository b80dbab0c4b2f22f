import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, dim, red, yellow } from '../output.js';

export interface ServiceApp {
  /** Service name, e.g. `diagnostics` (the NATS service is `mandate-<name>`). */
  name: string;
  entry: string;
}

/** Every app under `appsDir` whose package.json says `"mandate": { "service": true }`. */
export async function discoverServices(appsDir: string): Promise<ServiceApp[]> {
  const services: ServiceApp[] = [];
  for (const dir of (await readdir(appsDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const manifest = join(appsDir, dir, 'package.json');
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(await readFile(manifest, 'utf8')) as { mandate?: { service?: boolean } };
    if (!pkg.mandate?.service) continue;
    const entry = join(appsDir, dir, 'dist', 'main.js');
    if (!existsSync(entry)) throw new CliError(`${dir} is not built (${entry} is missing); run \`npm run build\` first`);
    services.push({ name: dir, entry });
  }
  return services;
}

export interface RunningServiceProcess {
  app: ServiceApp;
  metricsUrl: string | undefined;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** One SIGTERM, then up to `limitMs` for the service to drain; `'killed'` if it had to be SIGKILLed. */
  stop(limitMs: number): Promise<'stopped' | 'killed'>;
  /** SIGKILL now (a second Ctrl-C). */
  kill(): void;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** One service's JSON log line as a short human line; anything else passes through. */
export function formatLogLine(service: string, line: string): string {
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; time?: string; err?: { message?: string } };
    const level = LEVELS[entry.level ?? 30] ?? 'info';
    const time = (entry.time ?? '').slice(11, 19);
    const text = `${entry.msg ?? ''}${entry.err?.message ? `: ${entry.err.message}` : ''}`;
    const tag = level === 'error' || level === 'fatal' ? red(level) : level === 'warn' ? yellow(level) : dim(level);
    return `${dim(time)} ${service.padEnd(12)} ${tag} ${text}`;
  } catch {
    return `${service.padEnd(12)} ${line}`;
  }
}

export function startServiceProcess(
  app: ServiceApp,
  env: NodeJS.ProcessEnv,
  metricsPort: number | undefined,
  print: (line: string) => void,
): RunningServiceProcess {
  const child = spawn(process.execPath, [app.entry], {
    env: { ...env, ...(metricsPort ? { METRICS_PORT: String(metricsPort) } : {}) },
    // Its own process group: a Ctrl-C in the terminal signals `mandate up` alone, which then sends
    // this service exactly one SIGTERM and waits for it to drain. The IPC channel closes when
    // `mandate up` is gone, however it died, and the service then stops too (runServiceMain).
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) print(formatLogLine(app.name, line));
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    app,
    child,
    exited,
    metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    async stop(limitMs) {
      if (!running()) return 'stopped';
      child.kill('SIGTERM');
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, limitMs);
      await exited;
      clearTimeout(timer);
      return killed ? 'killed' : 'stopped';
    },
    kill() {
      if (running()) child.kill('SIGKILL');
    },
  };
}
