import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataDirInUseError, LOCK_FILE_NAME, lockDataDir } from './data-dir-lock.js';

/** A PID that certainly runs no process any more: a child that has exited and been reaped. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

const noLog = () => undefined;

describe('the data directory lock', () => {
  it('is refused while held, naming the holder and the directory, and free again once released', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-lock-'));
    const lock = await lockDataDir(dataDir, noLog);
    expect(JSON.parse(await readFile(join(dataDir, LOCK_FILE_NAME), 'utf8'))).toMatchObject({ pid: process.pid });

    const refused = await lockDataDir(dataDir, noLog).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirInUseError);
    expect((refused as Error).message).toContain(`PID ${process.pid}`);
    expect((refused as Error).message).toContain(dataDir);
    expect((refused as Error).message).not.toContain('\n');

    await lock.release();
    expect(existsSync(join(dataDir, LOCK_FILE_NAME))).toBe(false);
    await (await lockDataDir(dataDir, noLog)).release();
  });

  it('takes over a lock whose holder no longer runs, and says so', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-lock-'));
    const gone = deadPid();
    await writeFile(join(dataDir, LOCK_FILE_NAME), JSON.stringify({ pid: gone, startedAt: '2025-01-01T00:00:00.000Z' }));
    const said: string[] = [];
    const lock = await lockDataDir(dataDir, (message) => said.push(message));
    expect(said).toEqual([expect.stringContaining(`its holder (PID ${gone}) is no longer running`)]);
    expect(JSON.parse(await readFile(lock.path, 'utf8'))).toMatchObject({ pid: process.pid });
    lock.releaseSync();
    expect(existsSync(lock.path)).toBe(false);
  });

  it('does not take a reused PID for the holder: the process start time must match too', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-lock-'));
    // This very process's PID, with another start time: the holder died and its PID was given to us.
    await writeFile(join(dataDir, LOCK_FILE_NAME), JSON.stringify({ pid: process.pid, processStart: '1', startedAt: '2025-01-01T00:00:00.000Z' }));
    const said: string[] = [];
    await (await lockDataDir(dataDir, (message) => said.push(message))).release();
    expect(said).toHaveLength(process.platform === 'linux' ? 1 : 0);
  });

  it("refuses a stale lock whose holder's nats-server still runs on the data", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-lock-'));
    await writeFile(join(dataDir, LOCK_FILE_NAME), JSON.stringify({ pid: deadPid(), startedAt: '2025-01-01T00:00:00.000Z', nats: { pid: process.pid } }));
    const refused = (await lockDataDir(dataDir, noLog).catch((e: unknown) => e)) as Error;
    expect(refused.message).toContain(`the nats-server (PID ${process.pid})`);
    expect(refused.message).toContain(`kill ${process.pid}`);
  });

  it('notes its nats-server, and a later release leaves no lock behind', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-lock-'));
    const lock = await lockDataDir(dataDir, noLog);
    await lock.recordNats(process.pid);
    expect(JSON.parse(await readFile(lock.path, 'utf8'))).toMatchObject({ pid: process.pid, nats: { pid: process.pid } });
    await lock.release();
    expect(existsSync(lock.path)).toBe(false);
  });
});
