import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigError } from '@mandate/config';
import { KeyRing, WeakKeyError } from './key-ring.js';

export interface MasterKeyOptions {
  mode: 'embedded' | 'production';
  /** Where the embedded default keeps its generated key file. */
  dataDir: string;
  /** `MANDATE_MASTER_KEYS`: the key ring as JSON `{ "primary": "k2", "keys": { "k1": "<base64>", ... } }`. */
  keysJson?: string | undefined;
  /** `MANDATE_MASTER_KEY_FILE`: a file holding that JSON (a mounted secret). */
  keyFile?: string | undefined;
}

export interface LoadedKeyRing {
  ring: KeyRing;
  /** Where it came from, for the start-up log (never the key itself). */
  source: string;
  generated: boolean;
}

export function defaultKeyFile(dataDir: string): string {
  return join(dataDir, 'keys', 'master-keys.json');
}

/**
 * Loads the master key ring. Production refuses to start without a configured ring or with a
 * weak key; the embedded default generates a key file (mode 0600) on first start and finds it
 * again on the next.
 */
export async function loadMasterKeys(options: MasterKeyOptions): Promise<LoadedKeyRing> {
  if (options.keysJson) {
    return { ring: parseRing(options.keysJson, 'MANDATE_MASTER_KEYS'), source: 'MANDATE_MASTER_KEYS', generated: false };
  }
  if (options.keyFile) {
    const text = await readFile(options.keyFile, 'utf8').catch(() => {
      throw new ConfigError([`MANDATE_MASTER_KEY_FILE: cannot read ${options.keyFile}`]);
    });
    return { ring: parseRing(text, 'MANDATE_MASTER_KEY_FILE'), source: options.keyFile, generated: false };
  }
  if (options.mode === 'production') {
    throw new ConfigError([
      'MANDATE_MASTER_KEYS or MANDATE_MASTER_KEY_FILE: required in production mode (a generated local key file is only for the embedded default)',
    ]);
  }
  const file = defaultKeyFile(options.dataDir);
  try {
    return { ring: parseRing(await readFile(file, 'utf8'), file), source: file, generated: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const ring = KeyRing.generate();
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Written whole under a name of its own, then linked into place: a process starting at the same
  // moment finds no file or the whole file, never a half-written one, and a link fails if another
  // process's file got there first (then theirs is used, not overwritten).
  const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(draft, `${JSON.stringify(ring.toJSON(), null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(draft, 0o600);
    await link(draft, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadMasterKeys(options);
    throw error;
  } finally {
    await unlink(draft).catch(() => undefined);
  }
  return { ring, source: file, generated: true };
}

/** Adds a new primary key to a key file, keeping the old ones for reading. */
export async function rotateKeyFile(file: string): Promise<KeyRing> {
  const ring = parseRing(await readFile(file, 'utf8'), file).rotate();
  await writeFile(file, `${JSON.stringify(ring.toJSON(), null, 2)}\n`, { mode: 0o600 });
  return ring;
}

function parseRing(text: string, variable: string): KeyRing {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError([`${variable}: not JSON; expected {"primary":"k1","keys":{"k1":"<32 random bytes, base64>"}}`]);
  }
  try {
    return KeyRing.fromJSON(json);
  } catch (error) {
    if (error instanceof WeakKeyError) throw new ConfigError([`${variable}: ${error.message}`]);
    throw new ConfigError([`${variable}: expected {"primary":"k1","keys":{"k1":"<32 random bytes, base64>"}}`]);
  }
}
