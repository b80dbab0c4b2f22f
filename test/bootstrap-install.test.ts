import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './processes.js';

/*
 * `npm start` on a machine whose Node is older than 24: `tools/bootstrap.mjs` runs `npm ci` under
 * that Node, and npm warns EBADENGINE five lines per package that asks for Node 24. Here it
 * installs a project of one such package, offline, with the machine's own Node and npm.
 */

const ENGINES = { node: '>=24.11.0 <25' };

/** A `node` on PATH (outside the project's) that is not Node 24, with an `npm` beside it. */
function olderNode(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir || dir.startsWith(root)) continue;
    const node = join(dir, 'node');
    if (!existsSync(node) || !existsSync(join(dir, 'npm'))) continue;
    const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
    if (/^v\d+\./.test(version) && !version.startsWith('v24.')) return node;
  }
  return undefined;
}

const node = olderNode();

describe.skipIf(!node)('npm start on an older Node: the install', () => {
  it('says in one line why npm runs on another Node, instead of npm’s EBADENGINE warnings', async () => {
    const project = await mkdtemp(join(tmpdir(), 'mandate-bootstrap-'));
    await mkdir(join(project, 'tools'));
    await copyFile(join(root, 'tools', 'bootstrap.mjs'), join(project, 'tools', 'bootstrap.mjs'));
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'engine-probe', version: '1.0.0', private: true, engines: ENGINES }));
    await writeFile(
      join(project, 'package-lock.json'),
      JSON.stringify({ name: 'engine-probe', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'engine-probe', version: '1.0.0', engines: ENGINES } } }),
    );

    // `test` installs and then finds no Node 24 in this probe project: it fails after the install, which is all this looks at.
    const run = spawnSync(node!, [join(project, 'tools', 'bootstrap.mjs'), 'test'], {
      cwd: project,
      encoding: 'utf8',
      env: { PATH: [dirname(node!), '/usr/bin', '/bin'].join(delimiter), HOME: project, npm_config_cache: join(project, '.npm'), npm_config_offline: 'true' },
      timeout: 120_000,
    });
    const output = `${run.stdout}${run.stderr}`;
    expect(output).toContain('installing dependencies (npm ci');
    expect(output).toMatch(/npm runs on Node v\d+\.\d+\.\d+ here, older than the Node 24 the packages ask for/);
    expect(output.split('\n').filter((line) => line.includes('EBADENGINE')).length).toBeLessThanOrEqual(1);
    expect(output).not.toContain('npm warn');
  }, 150_000);
});
