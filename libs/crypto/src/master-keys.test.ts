import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@mandate/config';
import { defaultKeyFile, loadMasterKeys, rotateKeyFile } from './master-keys.js';

const strong = () => randomBytes(32).toString('base64');
const ringJson = (keys: Record<string, string>, primary = Object.keys(keys)[0]!) => JSON.stringify({ primary, keys });

async function configErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'loaded';
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
}

describe('loadMasterKeys', () => {
  it('generates a 0600 key file on first embedded start and finds the same ring again', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-keys-'));
    const first = await loadMasterKeys({ mode: 'embedded', dataDir });
    expect(first.generated).toBe(true);
    expect((await stat(defaultKeyFile(dataDir))).mode & 0o777).toBe(0o600);
    const second = await loadMasterKeys({ mode: 'embedded', dataDir });
    expect(second.generated).toBe(false);
    expect(second.ring.toJSON()).toEqual(first.ring.toJSON());
  });

  it('gives many loads at once on a new data dir the one ring that was written (generated once), and leaves no draft file behind', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-keys-'));
    const loaded = await Promise.all(Array.from({ length: 24 }, () => loadMasterKeys({ mode: 'embedded', dataDir })));
    expect(loaded.filter((l) => l.generated)).toHaveLength(1);
    const written = JSON.parse(await readFile(defaultKeyFile(dataDir), 'utf8')) as unknown;
    for (const one of loaded) expect(one.ring.toJSON()).toEqual(written);
    expect((await readdir(dirname(defaultKeyFile(dataDir)))).filter((name) => name !== basename(defaultKeyFile(dataDir)))).toEqual([]);
  });

  it('refuses to start in production without a configured key, naming the variables', async () => {
    const message = await configErrorOf(loadMasterKeys({ mode: 'production', dataDir: '/nonexistent' }));
    expect(message).toContain('MANDATE_MASTER_KEYS');
    expect(message).toContain('production');
  });

  it.each([
    ['all zero bytes', Buffer.alloc(32).toString('base64')],
    ['16 bytes', randomBytes(16).toString('base64')],
    ['a repeating pattern', Buffer.from('abcdabcdabcdabcdabcdabcdabcdabcd').toString('base64')],
    ['not base64', '!!!not-base64!!!'],
  ])('refuses a weak key (%s) in production without echoing it', async (_label, key) => {
    const message = await configErrorOf(loadMasterKeys({ mode: 'production', dataDir: '/x', keysJson: ringJson({ k1: key }) }));
    expect(message).toContain('MANDATE_MASTER_KEYS');
    expect(message).toContain('k1');
    expect(message).not.toContain(key);
  });

  it('refuses malformed JSON and a primary that is not in the ring', async () => {
    expect(await configErrorOf(loadMasterKeys({ mode: 'production', dataDir: '/x', keysJson: '{' }))).toContain('not JSON');
    expect(
      await configErrorOf(loadMasterKeys({ mode: 'production', dataDir: '/x', keysJson: ringJson({ k1: strong() }, 'k2') })),
    ).toContain('k2');
  });

  it('accepts a strong configured ring from the environment or a mounted file', async () => {
    const keysJson = ringJson({ k1: strong(), k2: strong() }, 'k2');
    const fromEnv = await loadMasterKeys({ mode: 'production', dataDir: '/x', keysJson });
    expect(fromEnv.ring.primaryId).toBe('k2');
    expect(fromEnv.source).toBe('MANDATE_MASTER_KEYS');
    const file = join(await mkdtemp(join(tmpdir(), 'mandate-keys-')), 'ring.json');
    await writeFile(file, keysJson);
    expect((await loadMasterKeys({ mode: 'production', dataDir: '/x', keyFile: file })).ring.keyIds).toEqual(['k1', 'k2']);
  });

  it('rotates a key file: a new primary, the old key kept for reading', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-keys-'));
    const { ring } = await loadMasterKeys({ mode: 'embedded', dataDir });
    const rotated = await rotateKeyFile(defaultKeyFile(dataDir));
    expect(rotated.primaryId).toBe('k2');
    const stored = JSON.parse(await readFile(defaultKeyFile(dataDir), 'utf8'));
    expect(stored.keys.k1).toBe(ring.toJSON().keys['k1']);
    expect(stored.primary).toBe('k2');
  });
});
