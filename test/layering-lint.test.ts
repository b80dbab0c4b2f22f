import { join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/*
 * The layering rule of eslint.config.js, held to what it promises: domain code of any service
 * cannot reach the store's collection API (only store/ may), while store/ and tests can.
 */
const root = join(import.meta.dirname, '..');
const eslint = new ESLint({ cwd: root });
const probe = (path: string, code: string) => eslint.lintText(code, { filePath: join(root, path) }).then(([result]) => result!.messages.map((m) => m.ruleId));

describe('the layering lint rule', () => {
  const reachesCollections = "import type { DocumentCollection } from '@mandate/store';\nexport type Probe = DocumentCollection<number>;\n";

  it('refuses the collection API in domain/ of every service', async () => {
    for (const app of ['vault', 'consent', 'scheduler', 'directory', 'authorizer', 'audit']) {
      expect(await probe(`apps/${app}/src/domain/probe.ts`, reachesCollections), app).toContain('no-restricted-imports');
    }
    expect(await probe('apps/vault/src/domain/probe.ts', "import { updateWithRetry } from '@mandate/store';\nexport const probe = updateWithRetry;\n")).toContain('no-restricted-imports');
    expect(await probe('apps/vault/src/domain/probe.ts', "import { FrozenClock } from '@mandate/store/testing';\nexport const probe = FrozenClock;\n")).toContain('no-restricted-imports');
  });

  it('allows it in store/ and in tests, and allows the pure parts of libs/store in domain/', async () => {
    expect(await probe('apps/vault/src/store/probe.ts', reachesCollections)).toEqual([]);
    expect(await probe('apps/vault/src/domain/probe.test.ts', reachesCollections)).toEqual([]);
    expect(await probe('apps/vault/src/domain/probe.ts', "import { Lease, type StoredDocument } from '@mandate/store';\nexport const probe: [typeof Lease, StoredDocument<number> | undefined] = [Lease, undefined];\n")).toEqual([]);
  });
});
