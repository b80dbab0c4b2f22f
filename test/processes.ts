import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..');
export const cliEntry = join(root, 'apps', 'cli', 'dist', 'main.js');
export const diagnosticsEntry = join(root, 'apps', 'diagnostics', 'dist', 'main.js');

/** End-to-end tests run the built apps, as a user would; `npm test` builds before testing. */
export function assertBuilt(...entries: string[]): void {
  for (const entry of entries) {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` (npm test builds first)`);
  }
}

export interface Spawned {
  child: ChildProcess;
  output(): string;
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  exit: Promise<number | null>;
}

/**
 * With `asInTerminal`, the process leads a process group of its own, as a shell's foreground job
 * does: `process.kill(-child.pid, 'SIGINT')` is then a Ctrl-C, which the terminal sends to the whole group.
 */
export function spawnNode(entry: string, args: string[], env: NodeJS.ProcessEnv = {}, options: { asInTerminal?: boolean } = {}): Spawned {
  const child = spawn(process.execPath, [entry, ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: options.asInTerminal ?? false });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exit,
    output: () => text,
    async waitFor(expected, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      const found = () => (typeof expected === 'string' ? text.includes(expected) : expected.test(text));
      while (!found()) {
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before printing ${expected}:\n${text}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${expected}:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
