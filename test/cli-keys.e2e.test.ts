import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMasterKeys } from '@mandate/crypto';
// The audit service's own loader: what it accepts at start-up is what these keys must be.
import { loadDigestKeys } from '../apps/audit/src/domain/signing-keys.js';
import { runCli } from './cli-process.js';

/*
 * `mandate keys master` and `mandate keys audit-signing`: the two keys a production deployment
 * (deploy/compose.yaml) must be given before its first start, in the formats the services load.
 */
describe('mandate keys master | audit-signing', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mandate-keys-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('master prints a key ring that production loads, a new one each time', async () => {
    const [first, second] = await Promise.all([runCli(['keys', 'master']), runCli(['keys', 'master'])]);
    expect(first.code).toBe(0);
    const loaded = await loadMasterKeys({ mode: 'production', dataDir: dir, keysJson: first.stdout.trim() });
    expect(loaded.ring.keyIds).toEqual(['k1']);
    expect(second.stdout).not.toBe(first.stdout);
    expect(first.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('audit-signing --env prints the deploy/.env line, whose value the audit service loads in production', async () => {
    const run = await runCli(['keys', 'audit-signing', '--env']);
    expect(run.code).toBe(0);
    const line = /^AUDIT_SIGNING_KEY='(\{.*\})'\n$/.exec(run.stdout);
    expect(line).toBeTruthy();
    const { ring } = await loadDigestKeys({ mode: 'production', keyJson: line![1]!, keyFile: join(dir, 'absent.json') });
    // The key id printed to pin is the one the service signs digests with.
    expect(run.stderr).toContain(`audit signing key ${ring.currentKid} (Ed25519)`);
    const signature = ring.sign('digest');
    expect(ring.verify(ring.currentKid, 'digest', signature)).toBe('valid');
  });

  it('audit-signing --out writes a key file of mode 0600 that the service loads as AUDIT_SIGNING_KEY_FILE, and never overwrites one', async () => {
    const file = join(dir, 'audit-signing-key.json');
    const run = await runCli(['keys', 'audit-signing', '--out', file]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const { ring, source } = await loadDigestKeys({ mode: 'production', keyFile: file });
    expect(source).toBe(file);
    expect(run.stderr).toContain(ring.currentKid);

    const before = await readFile(file, 'utf8');
    const again = await runCli(['keys', 'audit-signing', '--out', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; not overwriting a key file');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('refuses --out together with --env (usage, exit 2)', async () => {
    const run = await runCli(['keys', 'master', '--env', '--out', join(dir, 'both.json')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('choose --out or --env');
  });
});
