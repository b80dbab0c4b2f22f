#!/usr/bin/env node
// The README's two commands start here: `npm start` and `npm test`.
// This file runs on whatever Node launched npm (often older than 24), so it is plain JavaScript
// with no dependencies. It installs what is missing, then hands over to the project's Node 24
// (installed from the npm registry as the `node` dev dependency) for everything else.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const localNode = join(root, 'node_modules', '.bin', 'node');
const [command = 'help', ...args] = process.argv.slice(2);

const say = (message) => process.stderr.write(`• ${message}\n`);
const die = (message) => {
  process.stderr.write(`✗ ${message}\n`);
  process.exit(1);
};

function run(cmd, cmdArgs, options = {}) {
  const result = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) return { ok: false, error: result.error };
  return { ok: result.status === 0, status: result.status };
}

function mtime(path) {
  return existsSync(path) ? statSync(path).mtimeMs : 0;
}

function ensureDependencies() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  // The `mandate` link too: an install from before the CLI's bin was a file in git (apps/cli/bin) has none.
  const cliLink = join(root, 'node_modules', '.bin', 'mandate');
  const stale = !existsSync(marker) || mtime(join(root, 'package-lock.json')) > mtime(marker) || !existsSync(localNode) || !existsSync(cliLink);
  if (stale) {
    const useCi = existsSync(join(root, 'package-lock.json'));
    say(`installing dependencies (npm ${useCi ? 'ci' : 'install'}; this includes Node 24 from the npm registry)`);
    // npm runs on the Node that launched this script. An older one makes npm warn EBADENGINE,
    // five lines for every package that asks for Node 24, about a mismatch this very install
    // resolves: then only npm's errors are shown, after one line that says why.
    const foreignNode = !process.version.startsWith('v24.');
    if (foreignNode) say(`npm runs on Node ${process.version} here, older than the Node 24 the packages ask for; its EBADENGINE warnings are left out, as the install brings Node 24 and every script runs under it`);
    // npm passes its own log level down; the install should show progress whatever it was. Its
    // notice of a newer npm is about the machine's npm, not this project.
    const env = { ...process.env, npm_config_loglevel: foreignNode ? 'error' : 'warn', npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' };
    const result = run('npm', [useCi ? 'ci' : 'install'], { env });
    if (!result.ok) die('dependency installation failed (see npm output above)');
  }
  const version = spawnSync(localNode, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  if (!version.startsWith('v24.')) {
    die(`expected Node 24 at ${localNode}, found ${version || 'nothing'}; run \`npm ci\` (npm must run install scripts for the "node" package)`);
  }
}

function findOnPath(binary) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];
  return dirs.map((dir) => join(dir, binary)).find((candidate) => existsSync(candidate));
}

let aptUpdated = false;

/**
 * Installs a Debian package with apt-get (saying `why` first), as root or through passwordless sudo; false, and
 * silent, when that is not possible here (no apt-get, not root, sudo would ask for a password); false too when it failed.
 */
function aptInstall(pkg, why) {
  const hasApt = Boolean(findOnPath('apt-get'));
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const canSudo = !isRoot && Boolean(findOnPath('sudo')) && spawnSync('sudo', ['-n', 'true']).status === 0;
  if (!hasApt || !(isRoot || canSudo)) return false;
  say(why);
  const prefix = isRoot ? [] : ['sudo', '-n'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (aptArgs) => run(prefix[0] ?? 'apt-get', prefix.length ? [...prefix.slice(1), 'apt-get', ...aptArgs] : aptArgs, { env });
  if (!aptUpdated) {
    apt(['update', '-qq']);
    aptUpdated = true;
  }
  return apt(['install', '-y', '-qq', pkg]).ok;
}

function ensureNatsServer({ required }) {
  if (process.env.NATS_SERVER_BIN && existsSync(process.env.NATS_SERVER_BIN)) return true;
  if (findOnPath('nats-server')) return true;
  if (aptInstall('nats-server', 'nats-server is missing: installing the Debian package (apt-get install nats-server)') && findOnPath('nats-server')) return true;
  const how =
    'install nats-server: `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS), ' +
    'or download it from the NATS project and set NATS_SERVER_BIN to its path';
  if (required) die(`nats-server is not installed and could not be installed automatically; ${how}`);
  say(`nats-server is not installed; tests that need it will be skipped and say so. To run them, ${how}`);
  return false;
}

/** Same places as chromiumPath() in libs/testing/src/browser.ts. */
function findChromium() {
  if (process.env.CHROMIUM_PATH && existsSync(process.env.CHROMIUM_PATH)) return process.env.CHROMIUM_PATH;
  return ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((path) => existsSync(path));
}

/** The browser tests need Chromium; without it they are skipped (and say so), so this is never fatal. */
function ensureChromium() {
  if (findChromium()) return true;
  if (aptInstall('chromium', 'chromium is missing: installing the Debian package for the browser tests (apt-get install chromium)') && findChromium()) return true;
  say(
    'chromium is not installed; the browser tests will be skipped and say so. To run them, ' +
      'install chromium: `sudo apt-get install -y chromium` (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome executable',
  );
  return false;
}

function build() {
  say('building every project (nx run-many -t build)');
  const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}` };
  if (!run(join(root, 'node_modules', '.bin', 'nx'), ['run-many', '-t', 'build', '--output-style=static'], { env }).ok) die('build failed');
}

/** Replaces this process with one under Node 24, forwarding signals so Ctrl-C reaches it. */
function handOver(script, scriptArgs) {
  const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}` };
  const child = spawn(localNode, [script, ...scriptArgs], { cwd: root, stdio: 'inherit', env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

switch (command) {
  case 'start':
    ensureDependencies();
    ensureNatsServer({ required: true });
    build();
    handOver(join(root, 'apps', 'cli', 'dist', 'main.js'), ['up', ...args]);
    break;
  case 'test':
    ensureDependencies();
    ensureNatsServer({ required: false });
    ensureChromium();
    handOver(join(root, 'tools', 'run-tests.mjs'), args);
    break;
  case 'bench':
    ensureDependencies();
    ensureNatsServer({ required: true });
    build();
    handOver(join(root, 'bench', 'dist', 'main.js'), args);
    break;
  default:
    die(`unknown command ${command}; use start, test or bench`);
}
