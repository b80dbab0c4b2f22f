import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@mandate/config';
import { loadDecisionLogKeys } from './decision-log-keys.js';
import { loadMasterKeys } from './master-keys.js';

const dirs: string[] = [];
const dataDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'decision-log-keys-'));
  dirs.push(dir);
  return dir;
};

afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('loadDecisionLogKeys', () => {
  it('generates a ring of its own in the embedded default, apart from the master ring, and finds it again', async () => {
    const dir = await dataDir();
    const log = await loadDecisionLogKeys({ mode: 'embedded', dataDir: dir });
    const master = await loadMasterKeys({ mode: 'embedded', dataDir: dir });
    expect(log.generated).toBe(true);
    expect(log.source).toContain(join(dir, 'decision-log'));
    expect(log.ring.key(log.ring.primaryId)!.equals(master.ring.key(master.ring.primaryId)!)).toBe(false);
    const again = await loadDecisionLogKeys({ mode: 'embedded', dataDir: dir });
    expect(again.generated).toBe(false);
    expect(again.ring.key(again.ring.primaryId)!.equals(log.ring.key(log.ring.primaryId)!)).toBe(true);
  });

  it('is required in production, and a bad ring is refused naming its own variable', async () => {
    const refusal = (work: Promise<unknown>) => work.then(() => undefined, (e: unknown) => e as ConfigError);
    const missing = await refusal(loadDecisionLogKeys({ mode: 'production', dataDir: await dataDir() }));
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing!.problems.join()).toContain('MANDATE_DECISION_LOG_KEYS or MANDATE_DECISION_LOG_KEY_FILE');
    expect(missing!.problems.join()).not.toContain('MASTER');
    const bad = await refusal(loadDecisionLogKeys({ mode: 'production', dataDir: await dataDir(), keysJson: 'not json' }));
    expect(bad!.problems.join()).toMatch(/^MANDATE_DECISION_LOG_KEYS: not JSON/);
    const ok = await loadDecisionLogKeys({ mode: 'production', dataDir: await dataDir(), keysJson: JSON.stringify({ primary: 'd1', keys: { d1: randomBytes(32).toString('base64') } }) });
    expect(ok.source).toBe('MANDATE_DECISION_LOG_KEYS');
  });
});
