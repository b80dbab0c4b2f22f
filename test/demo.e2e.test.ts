import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { DEMO_PASSWORD } from '@mandate/demo';
import { freePort, natsServerMissing } from '@mandate/testing';
import { chromiumMissing, launchChromium } from '@mandate/testing/browser';
import { HttpBrowser } from '@mandate/testing/http-browser';
import { assertBuilt, cliEntry, root, spawnNode, type Spawned } from './processes.js';

/*
 * `mandate demo` as a newcomer meets it: the system started with `mandate up`, the demo started
 * next to it, and the commands it prints run as printed, in bash, from the repository (so
 * through `npx mandate`, the README's command). Sarah's consent is given over HTTP here; the
 * README quickstart, verbatim, gives it in Chromium.
 */

const missing = natsServerMissing('mandate demo end to end');
const READY = 'Ctrl-C stops the demo servers';

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs shell lines as the user's second terminal would: bash, in `cwd`, with `npx` finding the repository's `mandate`. */
function bash(script: string, cwd = root): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env['PATH'] ?? ''}` };
    delete env['NATS_URL'];
    delete env['MANDATE_TENANT'];
    const child = spawn('bash', ['-o', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The printed sections, by title: `# N. title` and the shell lines below it. */
function sectionsOf(output: string): Map<string, string> {
  const tried = output.slice(output.indexOf('# 1. '), output.indexOf(READY));
  const sections = new Map<string, string>();
  for (const part of tried.split(/^# \d+\. /m).filter((text) => text.trim())) {
    const [title = '', ...lines] = part.trimEnd().split('\n');
    sections.set(title, lines.join('\n'));
  }
  return sections;
}

/** A consent URL opened and approved by sarah: sign-in at the demo IdP, Mandate's consent page, then the CRM's authorization server. */
async function approveAsSarah(url: string): Promise<void> {
  const browser = new HttpBrowser();
  let next: { url: string; form?: Record<string, string> } = { url };
  for (let step = 0; step < 25; step++) {
    const response = await browser.request(next.url, next.form);
    const location = response.headers.get('location');
    if (location) {
      next = { url: new URL(location, next.url).href };
      continue;
    }
    const html = await response.text();
    if (html.includes('Access granted')) return;
    if (response.status !== 200) throw new Error(`${next.url} answered ${response.status}: ${html.slice(0, 500)}`);
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
    if (prompt === 'login') next = { url: next.url, form: { prompt, login: 'sarah', password: DEMO_PASSWORD } };
    else if (prompt) next = { url: next.url, form: { prompt } };
    else if (csrf) next = { url: next.url, form: { csrf, decision: 'approve', duration: '7' } };
    else throw new Error(`nothing to do on ${next.url}: ${html.slice(0, 500)}`);
  }
  throw new Error(`the consent flow from ${url} did not end`);
}

/** The consent page a `consent_required` answer (exit 7) names. */
function consentUrlIn(stderr: string): string {
  const url = /^\s+(http\S+\/consent\/\S+)$/m.exec(stderr)?.[1];
  if (!url) throw new Error(`no consent URL in:\n${stderr}`);
  return url;
}

/** Whether a port can be listened on now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const running: Spawned[] = [];

/** Ctrl-C, and waits: each process must stop what it started itself. */
async function stop(process: Spawned): Promise<number | null> {
  if (process.child.exitCode === null) process.child.kill('SIGINT');
  const timer = setTimeout(() => process.child.kill('SIGKILL'), 30_000);
  const code = await process.exit;
  clearTimeout(timer);
  return code;
}

async function stopAll(): Promise<void> {
  // The demo first, then the system under it.
  for (const process of running.splice(0).reverse()) await stop(process);
}

describe.skipIf(missing)('mandate demo: the seed scenario, registered and ready to try', () => {
  let dataDir: string;
  let natsUrl: string;
  let consentPort: number;
  let gatewayPort: number;
  let demoPorts: string[];
  let first: Spawned;
  let sections: Map<string, string>;
  const section = (title: string) => sections.get(title) ?? '';
  /** Printed sections (by title) or shell lines, after the printed "not on the defaults" exports, as in the user's terminal. */
  const run = (...parts: string[]) => bash([section('In every terminal first: this system is not on the defaults'), ...parts.map((part) => sections.get(part) ?? part)].join('\n'));

  const startDemo = async () => {
    const demo = spawnNode(cliEntry, ['demo', '--nats-url', natsUrl, '--data-dir', dataDir, '--consent-url', `http://127.0.0.1:${consentPort}`, ...demoPorts]);
    running.push(demo);
    await demo.waitFor(READY, 90_000);
    return demo;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dataDir = await mkdtemp(join(tmpdir(), 'mandate-demo-'));
    const [natsPort, monitorPort, authorizerPort] = [await freePort(), await freePort(), await freePort()];
    [consentPort, gatewayPort] = [await freePort(), await freePort()];
    natsUrl = `nats://127.0.0.1:${natsPort}`;
    const system = spawnNode(cliEntry, [
      'up',
      ...['--data-dir', dataDir, '--nats-port', String(natsPort), '--monitor-port', String(monitorPort), '--metrics-port', '0'],
      ...['--authorizer-port', String(authorizerPort), '--consent-port', String(consentPort), '--gateway-port', String(gatewayPort)],
    ]);
    running.push(system);
    await system.waitFor('Press Ctrl-C to stop.', 90_000);
    const flags = ['--idp-port', '--auth-server-port', '--crm-port', '--finance-port', '--documents-port'];
    demoPorts = [];
    for (const flag of flags) demoPorts.push(flag, String(await freePort()));
    first = await startDemo();
    sections = sectionsOf(first.output());
  }, 180_000);

  afterAll(stopAll, 90_000);

  it('says what it started and registered, with demo credentials marked as such', () => {
    const output = first.output();
    expect(output).toContain('demo accounts and secrets: nothing here is for real use');
    expect(output).toContain('people: sarah (sales), bob (finance), password demo');
    expect(output).toContain('workloads  sales-brief-agent, report-agent, sales-gateway');
    expect(output).toContain('providers  crm, finance, documents, weather');
    expect(output).toContain(`MCP gateway                http://127.0.0.1:${gatewayPort}/mcp/default/sales`);
    expect(section('In every terminal first: this system is not on the defaults')).toContain(`export NATS_URL=${natsUrl}`);
  });

  it("a WAT for sarah, from her sign-in at the demo IdP; bob's token is refused by the agent's authorizer config", async () => {
    const wat = await run('A WAT for sarah', 'printf %s "$SARAH_WAT"');
    expect(wat.code, wat.stderr).toBe(0);
    expect(wat.stdout).toMatch(/user\s+\{"iss":"http:\/\/127\.0\.0\.1:\d+","sub":"sarah"\}/);
    const token = wat.stdout.trim().split('\n').at(-1)!;
    expect(decodeJwt(token)).toMatchObject({ workload: 'sales-brief-agent', bnd: 'user-jwt', user: { sub: 'sarah' } });

    // The section's first command, for bob instead, as its comment says.
    const forSarah = /\$\((npx mandate demo sign-in sarah \| [^)]+)\)/.exec(section('A WAT for sarah'))![1]!;
    const bob = await run(forSarah.replace('sign-in sarah', 'sign-in bob'));
    expect(bob.code).toBe(5);
    expect(bob.stderr).toContain('a required custom claim does not match');
  }, 60_000);

  it("sarah's CRM token: consent first (exit 7 and the URL), approved at the consent page and the CRM's authorization server, then the token", async () => {
    const asked = await run('A WAT for sarah', "sarah's CRM token for the agent, with her consent");
    expect(asked.code, asked.stderr).toBe(7);
    await approveAsSarah(consentUrlIn(asked.stderr));

    const released = await run('A WAT for sarah', "sarah's CRM token for the agent, with her consent");
    expect(released.code, released.stderr).toBe(0);
    const crmToken = released.stdout.trim().split('\n').at(-1)!;
    expect(decodeJwt(crmToken)).toMatchObject({ sub: 'sarah', aud: 'https://crm.example', scope: 'crm.notes.read' });
    // The token works at the sample CRM API.
    const crmUrl = /Sample CRM API\s+(\S+)/.exec(first.output())![1]!;
    const notes = await fetch(`${crmUrl}/accounts/acme/notes`, { headers: { authorization: `Bearer ${crmToken}` } });
    expect(notes.status).toBe(200);
    expect(JSON.stringify(await notes.json())).toContain('SSO before signing');
  }, 90_000);

  it('an M2M token for the report agent, and the API key the vault keeps for it', async () => {
    const result = await run('An M2M token', 'An API key');
    expect(result.code, result.stderr).toBe(0);
    const [m2m = '', apiKey] = result.stdout.trim().split('\n');
    expect(decodeJwt(m2m)).toMatchObject({ sub: 'mandate', aud: 'https://finance.example', scope: 'finance.spend.read' });
    expect(apiKey).toBe('demo-weather-api-key-not-a-secret');
  }, 60_000);

  it('a scheduled job and an event-triggered one, which runs against the sample finance API when the event is published', async () => {
    const result = await run('A scheduled job');
    expect(result.code, result.stderr).toBe(0);
    const cron = await run('npx mandate job get spend-report --json');
    expect(cron.code, cron.stderr).toBe(0);
    expect(JSON.parse(cron.stdout)).toMatchObject({ name: 'spend-report', workload: 'report-agent' });
    await expect
      .poll(async () => (await run('npx mandate job runs spend-on-request')).stdout, { timeout: 30_000, interval: 1_000 })
      .toMatch(/event\s+succeeded\s+1\s+200/);
  }, 90_000);

  it('the gateway in front of the sample APIs: sarah sees the CRM, finance and documents tools, bob finance alone', async () => {
    const result = await run('The MCP gateway in front of the sample APIs');
    expect(result.code, result.stderr).toBe(0);
    const [sarah = '', bob = ''] = result.stdout.split(/(?=^principal {2})/m);
    expect(sarah).toContain('principal  sarah');
    expect(sarah).toContain('visible (4)');
    expect(bob).toContain('principal  bob');
    expect(bob).toMatch(/visible \(1\)\s+tool\s+target\s+upstream tool\s+finance___getSpend/);
  }, 60_000);

  it('the audit trail of all that verifies', async () => {
    const result = await run('The audit trail');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^(\d+)\/\1 records valid/m);
    expect(result.stderr).toContain('✓ the audit trail of default');
  }, 60_000);

  it('Ctrl-C stops the demo servers and leaves the records; a second run reuses them, and its commands work as before', async () => {
    const idpUrl = /Demo IdP\s+(\S+)/.exec(first.output())![1]!;
    running.splice(running.indexOf(first), 1);
    expect(await stop(first)).toBe(0);
    expect(first.output()).toContain("stopped; the demo's workloads, providers and gateway stay registered in tenant default");
    await expect(fetch(`${idpUrl}/.well-known/openid-configuration`)).rejects.toThrow();

    const second = await startDemo();
    expect(second.output()).toContain('workloads  sales-brief-agent (kept), report-agent (kept), sales-gateway (kept)');
    expect(second.output()).toContain('providers  crm (kept), finance (kept), documents (kept), weather (kept)');
    expect(second.output()).toContain('gateway    sales (kept), targets sales/crm (kept), sales/finance (kept), sales/documents (kept)');
    expect(sectionsOf(second.output())).toEqual(sections);
    // The key files were reused: the printed commands still get a WAT, and sarah's consent still holds.
    const released = await run('A WAT for sarah', "sarah's CRM token for the agent, with her consent");
    expect(released.code, released.stderr).toBe(0);

    // A demo already running: its ports are taken, and the next one says so in one line.
    const third = spawnNode(cliEntry, ['demo', '--nats-url', natsUrl, '--data-dir', dataDir, ...demoPorts]);
    expect(await third.exit).toBe(1);
    expect(third.output().trim()).toBe(`✗ port ${demoPorts[1]} (--idp-port) is in use: choose another with --idp-port`);
  }, 120_000);
});

const readmeMissing =
  missing ?? chromiumMissing('the README quickstart, verbatim, with the consent step in Chromium');

describe.skipIf(readmeMissing)('the README quickstart, verbatim, on the default ports', () => {
  afterEach(stopAll, 90_000);

  /** The quickstart's third terminal: the block of the README's Quickstart that starts with a WAT for sarah. */
  function quickstartCommands(): string[] {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const quickstart = readme.slice(readme.indexOf('## Quickstart'), readme.indexOf('\n## ', readme.indexOf('## Quickstart') + 1));
    const blocks = [...quickstart.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(blocks.slice(0, 2).map((block) => block.trim().split(/\s+#/)[0])).toEqual(['npm start', 'npx mandate demo']);
    return blocks[2]!.split('\n').filter((line) => line.trim() && !line.startsWith('#'));
  }

  async function approveInChromium(page: Page, url: string): Promise<void> {
    await page.goto(url);
    for (let step = 0; step < 12; step++) {
      if (await page.getByRole('heading', { name: 'Access granted' }).count()) return;
      const before = page.url();
      if (await page.locator('input[name="login"]').count()) {
        await page.locator('input[name="login"]').fill('sarah');
        await page.locator('input[name="password"]').fill(DEMO_PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
      } else if (await page.getByRole('button', { name: 'Approve' }).count()) {
        await page.getByLabel('For 7 days').check();
        await page.getByRole('button', { name: 'Approve' }).click();
      } else {
        await page.getByRole('button', { name: 'Allow' }).click();
      }
      await page.waitForURL((next) => next.href !== before);
    }
    throw new Error(`the consent flow did not end, at ${page.url()}`);
  }

  it('npm start, npx mandate demo, then every command of the third terminal; sarah approves in a real browser', async ({ skip }) => {
    assertBuilt(cliEntry);
    const defaults = [4222, 8222, 4480, 4490, 4494, 4510, 4511, 4512, 4513, 4514];
    const taken = [];
    for (const port of defaults) if (!(await portFree(port))) taken.push(port);
    if (taken.length > 0) return skip(`the quickstart runs on the default ports, and ${taken.join(', ')} are taken (a running npm start or demo?)`);

    // A directory of its own, so that the quickstart's `.mandate` is not the developer's: `npx mandate` still finds the build.
    const cwd = await mkdtemp(join(tmpdir(), 'mandate-quickstart-'));
    await symlink(join(root, 'node_modules'), join(cwd, 'node_modules'));
    await mkdir(join(cwd, '.mandate'));
    const dataDir = join(cwd, '.mandate');
    const system = spawnNode(cliEntry, ['up', '--data-dir', dataDir, '--metrics-port', '0']);
    running.push(system);
    await system.waitFor('Press Ctrl-C to stop.', 90_000);
    const demo = spawnNode(cliEntry, ['demo', '--data-dir', dataDir]);
    running.push(demo);
    await demo.waitFor(READY, 90_000);

    const commands = quickstartCommands();
    const consentAt = commands.findIndex((line) => line.includes('--flow USER_FEDERATION'));
    expect(consentAt).toBeGreaterThan(0);
    const upTo = (end: number) => commands.slice(0, end + 1).join('\n');
    const asked = await bash(upTo(consentAt), cwd);
    expect(asked.code, asked.stderr).toBe(7);

    const browser = await launchChromium();
    try {
      await approveInChromium(await (await browser.newContext()).newPage(), consentUrlIn(asked.stderr));
    } finally {
      await browser.close();
    }
    const everything = await bash(`set -e\n${commands.join('\n')}`, cwd);
    expect(everything.code, everything.stderr).toBe(0);
    expect(everything.stdout).toContain('demo-weather-api-key-not-a-secret');
    expect(everything.stderr).toContain('✓ the audit trail of default');
  }, 240_000);
});
