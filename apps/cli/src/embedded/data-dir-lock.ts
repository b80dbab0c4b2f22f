import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError } from '../output.js';

/** A process, told apart from a later one with the same PID where the kernel says when it started. */
export interface LockProcess {
  pid: number;
  /** The kernel's start time of the process (Linux `/proc/<pid>/stat`), so a reused PID is not taken for the holder. */
  processStart?: string;
}

/** Who holds a data directory: enough to tell whether that process, or the nats-server it started, still runs. */
export interface LockHolder extends LockProcess {
  /** When it took the lock (ISO 8601), for the message that names it. */
  startedAt: string;
  nats?: LockProcess;
}

export interface DataDirLock {
  path: string;
  /** Notes the nats-server this process started, so that a later start does not run a second one on the same data if this process dies without stopping it. */
  recordNats(pid: number): Promise<void>;
  /** Removes the lock file if it is still this process's. */
  release(): Promise<void>;
  /** The same, synchronously, for a process-exit handler. */
  releaseSync(): void;
}

/** The data directory is held by a running `mandate up`. */
export class DataDirInUseError extends CliError {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    super(`${dataDir} is in use by another \`mandate up\` (PID ${holder.pid}, since ${holder.startedAt}): stop that one first, or give this one another --data-dir`);
  }
}

export const LOCK_FILE_NAME = 'mandate-up.lock';

/**
 * Takes the data directory for this process, so that two `mandate up` never run one nats-server
 * each on the same JetStream folder. A lock whose holder no longer runs is stale: it is taken
 * over, and `log` says so.
 */
export async function lockDataDir(dataDir: string, log: (message: string) => void): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE_NAME);
  const mine: LockHolder = { ...lockProcess(process.pid), startedAt: new Date().toISOString() };
  // Written aside and linked into place: link() creates the lock atomically (EEXIST if there is
  // one) and with its content, so a reader never finds it half written.
  const draft = `${path}.${process.pid}`;
  await writeFile(draft, `${JSON.stringify(mine)}\n`, { mode: 0o644 });
  try {
    // A stale lock is removed and the link tried again; a second EEXIST means another start won the race.
    for (let attempt = 1; ; attempt++) {
      try {
        await link(draft, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await readHolder(path);
      if (holder && isRunning(holder)) throw new DataDirInUseError(dataDir, holder);
      if (holder?.nats && isRunning(holder.nats)) {
        throw new CliError(`the nats-server (PID ${holder.nats.pid}) of a \`mandate up\` that has ended (PID ${holder.pid}) still runs on ${dataDir}: stop it (kill ${holder.nats.pid}), then start again`);
      }
      if (attempt === 2) throw new CliError(`${dataDir} is being taken by another \`mandate up\` starting at the same time: stop it, or give this one another --data-dir`);
      log(`taking over the lock ${path}: ${holder ? `its holder (PID ${holder.pid}) is no longer running` : 'it is unreadable'}`);
      await unlink(path).catch(ignoreMissing);
    }
  } finally {
    await unlink(draft).catch(ignoreMissing);
  }

  const stillMine = (text: string | undefined) => {
    const holder = text === undefined ? undefined : parseHolder(text);
    return holder?.pid === mine.pid && holder.startedAt === mine.startedAt;
  };
  return {
    path,
    async recordNats(pid) {
      // Replaced by rename(), atomically: a reader sees the old lock or the new one.
      await writeFile(draft, `${JSON.stringify({ ...mine, nats: lockProcess(pid) })}\n`, { mode: 0o644 });
      await rename(draft, path);
    },
    async release() {
      if (stillMine(await readFile(path, 'utf8').catch(() => undefined))) await unlink(path).catch(ignoreMissing);
    },
    releaseSync() {
      try {
        if (stillMine(readFileSync(path, 'utf8'))) unlinkSync(path);
      } catch {
        // Gone already, or not ours: nothing to release.
      }
    },
  };
}

async function readHolder(path: string): Promise<LockHolder | undefined> {
  return parseHolder(await readFile(path, 'utf8').catch(() => ''));
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const { pid, processStart, startedAt, nats } = JSON.parse(text) as Partial<LockHolder>;
    const holder = { pid, processStart };
    if (!isLockProcess(holder) || typeof startedAt !== 'string') return undefined;
    return { ...lockProcessOf(holder), startedAt, ...(nats && isLockProcess(nats) ? { nats: lockProcessOf(nats) } : {}) };
  } catch {
    return undefined;
  }
}

const isLockProcess = (value: { pid?: unknown; processStart?: unknown }): value is { pid: number; processStart?: string } =>
  Number.isInteger(value.pid) && (value.processStart === undefined || typeof value.processStart === 'string');

/** This machine's process `pid` now. */
function lockProcess(pid: number): LockProcess {
  return lockProcessOf({ pid, processStart: processStartOf(pid) });
}

/** Without an undefined `processStart` (exactOptionalPropertyTypes). */
const lockProcessOf = ({ pid, processStart }: { pid: number; processStart?: string | undefined }): LockProcess => (processStart === undefined ? { pid } : { pid, processStart });

/** The PID is alive (not a zombie) and, where the kernel says when it started, is the same process. */
export function isRunning(holder: LockProcess): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: it runs, as another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(holder.pid);
  if (stat?.state === 'Z') return false;
  return holder.processStart === undefined || stat === undefined || stat.start === holder.processStart;
}

function processStartOf(pid: number): string | undefined {
  return procStat(pid)?.start;
}

/** Fields 3 and 22 of `/proc/<pid>/stat`: the state and the start time in clock ticks since boot; undefined off Linux. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return undefined;
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
