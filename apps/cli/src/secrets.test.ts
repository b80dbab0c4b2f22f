import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './output.js';
import { readSecret, secretGiven, secretSourcesOf } from './secrets.js';

const KEY = { stem: 'key', what: 'API key' };
const CLIENT_SECRET = { stem: 'client-secret', what: 'client secret' };

async function refusal(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof CliError)) throw new Error(`expected a CliError, got ${String(error)}`);
  return error;
}

describe('secrets from a file, an environment variable or stdin', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('finds the options commander set, by their stem', () => {
    expect(secretSourcesOf({ clientSecretFile: 'f', keyEnv: 'V' }, CLIENT_SECRET)).toEqual({ file: 'f', env: undefined, stdin: undefined });
    expect(secretSourcesOf({ clientSecretFile: 'f', keyEnv: 'V' }, KEY)).toEqual({ file: undefined, env: 'V', stdin: undefined });
    expect(secretGiven({})).toBe(false);
    expect(secretGiven({ stdin: '-' })).toBe(true);
  });

  it('reads a file without its trailing line break, and an environment variable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mandate-secret-'));
    try {
      await writeFile(join(dir, 'k'), 'a b\tc\r\n\n', { mode: 0o600 });
      expect(await readSecret(KEY, { file: join(dir, 'k') })).toBe('a b\tc');
      await writeFile(join(dir, 'empty'), '\n', { mode: 0o600 });
      const empty = await refusal(readSecret(KEY, { file: join(dir, 'empty') }));
      expect(empty.exitCode).toBe(2);
      expect(empty.message).toContain('is empty');
      expect((await refusal(readSecret(KEY, { file: join(dir, 'missing') }))).message).toContain('ENOENT');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    vi.stubEnv('MANDATE_TEST_SECRET', 'from-env\n');
    expect(await readSecret(KEY, { env: 'MANDATE_TEST_SECRET' })).toBe('from-env');
    expect(await readSecret(KEY, {})).toBeUndefined();
  });

  it('refuses a plain value and an unset variable without repeating either', async () => {
    const plain = await refusal(readSecret(CLIENT_SECRET, { stdin: 'hunter2-secret' }));
    expect(plain.exitCode).toBe(2);
    expect(plain.message).toContain('--client-secret takes only "-"');
    expect(plain.message).not.toContain('hunter2');
    const unset = await refusal(readSecret(KEY, { env: 'sk_live_pasted_by_mistake' }));
    expect(unset.exitCode).toBe(2);
    expect(unset.message).not.toContain('sk_live');
  });
});
