import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@mandate/config';
import { loadDigestKeys } from './signing-keys.js';

describe('loadDigestKeys', () => {
  it('in production, refuses to start without a key, naming the variables (never generating one)', async () => {
    const keyFile = join(await mkdtemp(join(tmpdir(), 'mandate-audit-keys-')), 'audit-signing-key.json');
    const error = await loadDigestKeys({ mode: 'production', keyFile }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems[0]).toMatch(/^AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE: required in production mode/);
    expect((await loadDigestKeys({ mode: 'embedded', keyFile })).generated).toBe(true);
  });
});
