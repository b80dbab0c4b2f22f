import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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
/** What pino writes on every line, shown in its own place (or dropped) rather than as a field. */
const FRAME_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'service', 'err']);
const MAX_FIELD_CHARS = 200;

/** How `mandate up` writes its services' logs: one readable line each on a terminal, their JSON lines otherwise. */
export type LogFormat = 'pretty' | 'json';

/**
 * One service's log line in `format`. A JSON line keeps every structured field: `pretty` puts them
 * after the message as `name=value`, `json` passes the line on with the service named in it; a
 * line that is not JSON (a crash before the logger started) is kept as the message.
 */
export function formatLogLine(service: string, line: string, format: LogFormat = 'pretty'): string {
  const entry = parsedLogLine(line);
  if (format === 'json') return JSON.stringify(entry ? { ...entry, service } : { level: 30, time: new Date().toISOString(), service, msg: line });
  if (!entry) return `${service.padEnd(12)} ${line}`;
  const level = LEVELS[typeof entry['level'] === 'number' ? entry['level'] : 30] ?? 'info';
  const time = typeof entry['time'] === 'string' ? entry['time'].slice(11, 19) : typeof entry['time'] === 'number' ? new Date(entry['time']).toISOString().slice(11, 19) : '';
  const err = entry['err'] as { message?: unknown } | undefined;
  const fields = Object.entries(entry)
    .filter(([name]) => !FRAME_FIELDS.has(name))
    .map(([name, value]) => `${name}=${fieldText(value)}`);
  const text = [`${typeof entry['msg'] === 'string' ? entry['msg'] : ''}${typeof err?.message === 'string' ? `: ${err.message}` : ''}`, ...fields].join(' ');
  const tag = level === 'error' || level === 'fatal' ? red(level) : level === 'warn' ? yellow(level) : dim(level);
  return `${dim(time)} ${service.padEnd(12)} ${tag} ${text}`;
}

function parsedLogLine(line: string): Record<string, unknown> | undefined {
  try {
    const entry: unknown = JSON.parse(line);
    return entry && typeof entry === 'object' && !Array.isArray(entry) ? (entry as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function fieldText(value: unknown): string {
  const text = typeof value === 'string' ? (/[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value) : JSON.stringify(value) ?? String(value);
  return text.length > MAX_FIELD_CHARS ? `${text.slice(0, MAX_FIELD_CHARS)}…` : text;
}

export function startServiceProcess(
  app: ServiceApp,
  env: NodeJS.ProcessEnv,
  metricsPort: number | undefined,
  print: (line: string) => void,
  logFormat: LogFormat = 'pretty',
): RunningServiceProcess {
  const child = spawn(process.execPath, [app.entry], {
    env: { ...env, ...(metricsPort ? { METRICS_PORT: String(metricsPort) } : {}) },
    // Its own process group: a Ctrl-C in the terminal signals `mandate up` alone, which then sends
    // this service exactly one SIGTERM and waits for it to drain. The IPC channel closes when
    // `mandate up` is gone, however it died, and the service then stops too (runServiceMain).
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  // Whole lines: a chunk of a pipe can end in the middle of one.
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => line.trim() && print(formatLogLine(app.name, line, logFormat)));
  }
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
