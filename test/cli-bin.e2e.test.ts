import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertBuilt, cliEntry, root } from './processes.js';

/*
 * The README's command is `npx mandate`. npm links a workspace's bin at install time only if
 * its file is there then, and on a fresh clone nothing is built yet: so the bin must be a file in
 * git that loads the build, not the build itself.
 */

const cliPackage = join(root, 'apps', 'cli');

describe('npx mandate, the documented command', () => {
  it('runs the built CLI from the repository', () => {
    assertBuilt(cliEntry);
    const env = { ...process.env, NO_COLOR: '1', PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env['PATH'] ?? ''}` };
    const version = spawnSync('npx', ['mandate', '--version'], { cwd: root, env, encoding: 'utf8' });
    expect(version.stderr).not.toContain('could not determine executable to run');
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe('0.1.0');
    const help = spawnSync('npx', ['mandate', '--help'], { cwd: root, env, encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: mandate');
  });

  it('is linked to a file that exists before any build and is not ignored by git, as npm needs at install time', () => {
    const { bin } = JSON.parse(readFileSync(join(cliPackage, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const target = join(cliPackage, bin['mandate']!);
    expect(target).not.toContain(`${join(cliPackage, 'dist')}`);
    // Exit 1: not ignored (0 would mean ignored, so missing from a fresh clone).
    expect(spawnSync('git', ['check-ignore', '-q', target], { cwd: root }).status).toBe(1);
    expect(realpathSync(join(root, 'node_modules', '.bin', 'mandate'))).toBe(realpathSync(target));
  });
});
