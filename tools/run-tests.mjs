#!/usr/bin/env node
// `npm test` after bootstrap: build, typecheck, lint, then every vitest test against real
// processes. Ends with one plain line: `N passed, N failed, N skipped` (read by CI).
// Build, typecheck and lint count as one test each, so a type error fails the run visibly.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const workDir = join(root, '.mandate-test');
const bin = (name) => join(root, 'node_modules', '.bin', name);
rmSync(workDir, { recursive: true, force: true });
mkdirSync(workDir, { recursive: true });

const counts = { passed: 0, failed: 0, skipped: 0 };
const checks = [];

function check(name, cmd, args) {
  process.stderr.write(`\n• ${name}: ${[cmd.split('/').pop(), ...args].join(' ')}\n`);
  const started = Date.now();
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  const ok = result.status === 0;
  checks.push(`${name} ${ok ? 'passed' : 'FAILED'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  counts[ok ? 'passed' : 'failed'] += 1;
  return ok;
}

check('build', bin('nx'), ['run-many', '-t', 'build', '--output-style=static']);
check('typecheck', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
check('lint', bin('eslint'), ['--max-warnings', '0', '.']);

const report = join(workDir, 'vitest.json');
const skipLog = join(workDir, 'skipped.log');
process.stderr.write('\n• tests: vitest run\n');
const vitest = spawnSync(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, MANDATE_SKIP_LOG: skipLog },
});

if (existsSync(report)) {
  const results = JSON.parse(readFileSync(report, 'utf8'));
  counts.passed += results.numPassedTests;
  counts.failed += results.numFailedTests;
  counts.skipped += results.numPendingTests + results.numTodoTests;
  // A file that failed to load has no test results of its own: count it, or it would vanish.
  const brokenFiles = results.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0);
  counts.failed += brokenFiles.length;
  if (vitest.status !== 0 && results.numFailedTests === 0 && brokenFiles.length === 0) counts.failed += 1;
} else {
  process.stderr.write('✗ vitest produced no report\n');
  counts.failed += 1;
}

process.stdout.write(`\nchecks: ${checks.join(', ')}\n`);
if (existsSync(skipLog)) {
  const reasons = [...new Set(readFileSync(skipLog, 'utf8').split('\n').filter(Boolean))];
  process.stdout.write(`skip reasons:\n${reasons.map((r) => `  - ${r}`).join('\n')}\n`);
}
process.stdout.write(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
process.exit(counts.failed > 0 ? 1 : 0);
