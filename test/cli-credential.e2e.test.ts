import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate credential commands against the vault service');

const RESOURCE = 'https://reports.acme.example';
/** The API key the vault holds for provider `weather`; printed only where asked, on stdout. */
const WEATHER_KEY = 'weather-api-key-6f1c2d';

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate credential against the directory, authorizer and vault over a real nats-server', { timeout: 90_000 }, () => {
  let h: TestSystem;
  let idp: TestIdp;
  let dir: string;
  /** A WAT of report-agent alone, in a file only its owner may read. */
  let watFile: string;
  let machineWat: string;
  let userWat: string;
  const runs: CliRun[] = [];
  /** Runs the built CLI against this test's NATS, in tenant `acme`. */
  const mandate = async (args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}) => {
    const run = await runCli(args, { ...options, env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme', ...options.env } });
    runs.push(run);
    return run;
  };
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    idp = await startTestIdp();
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-credential-'));
    const reporterKey = await h.workload('report-agent');
    const salesKey = await h.workload('sales-agent', { allowUserIdTokens: true });
    machineWat = await h.machineWat('report-agent', reporterKey);
    userWat = (await h.userWat('sales-agent', salesKey, 'sarah@acme.example')).wat;
    watFile = join(dir, 'report-agent.wat');
    await writeFile(watFile, `${machineWat}\n`, { mode: 0o600 });
    const secretFile = join(dir, 'client-secret');
    await writeFile(secretFile, 'test-app-secret', { mode: 0o600 });
    // Set up as an operator would, with the CLI: an OAuth2 client whose M2M tokens are for one resource (RFC 8707), and an API key.
    ok(
      await mandate([
        'provider', 'create', 'reporting', '--oauth2', '--vendor', 'custom', '--discovery-url', idp.discoveryUrl,
        '--client-id', 'test-app', '--client-secret-file', secretFile, '--token-param', `resource=${RESOURCE}`,
        '--allow-workload', 'report-agent', '--allow-workload', 'sales-agent',
      ]),
    );
    ok(await mandate(['provider', 'create', 'weather', '--api-key', '--key', '-', '--allow-workload', 'report-agent'], { stdin: WEATHER_KEY }));
  }, 60_000);

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('oauth2-token M2M: prints the access token alone on stdout, for the resource the provider names', async () => {
    const run = ok(await mandate(['credential', 'oauth2-token', '--provider', 'reporting', '--flow', 'M2M', '--scope', 'reports.read', '--wat-file', watFile]));
    const accessToken = run.stdout.trim();
    expect(run.stdout).toBe(`${accessToken}\n`);
    expect(decodeJwt(accessToken)).toMatchObject({ aud: RESOURCE, sub: 'test-app' });
    expect(run.stderr).not.toContain(accessToken);

    // --json: the vault's whole answer; the same cached token.
    const asJson = JSON.parse(ok(await mandate(['credential', 'oauth2-token', '--provider', 'reporting', '--flow', 'M2M', '--scope', 'reports.read', '--wat-file', watFile, '--json'])).stdout) as Record<string, unknown>;
    expect(asJson).toMatchObject({ accessToken, tokenType: expect.stringMatching(/^bearer$/i), scopes: ['reports.read'] });
    expect(asJson['expiresAt']).toEqual(expect.any(String));

    // The WAT from a variable (its name on the command line), or from stdin with a Bearer prefix.
    const fromEnv = ok(await mandate(['credential', 'oauth2-token', '--provider', 'reporting', '--flow', 'M2M', '--scope', 'reports.read', '--wat-env', 'REPORT_WAT'], { env: { REPORT_WAT: machineWat } }));
    expect(fromEnv.stdout.trim()).toBe(accessToken);
    const fromStdin = ok(await mandate(['credential', 'oauth2-token', '--provider', 'reporting', '--flow', 'M2M', '--scope', 'reports.read', '--wat', '-'], { stdin: `Bearer ${machineWat}\n` }));
    expect(fromStdin.stdout.trim()).toBe(accessToken);
  });

  it('oauth2-token USER_FEDERATION without consent: prints the consent URL and session on stderr and exits 7, then asks again with --session-id', async () => {
    const args = ['credential', 'oauth2-token', '--provider', 'reporting', '--flow', 'USER_FEDERATION', '--scope', 'reports.read', '--wat-env', 'USER_WAT'];
    const env = { USER_WAT: userWat };
    const asJson = await mandate([...args, '--json'], { env });
    expect(asJson.code, asJson.stderr).toBe(7);
    const consent = JSON.parse(asJson.stdout) as { code: string; sessionId: string; authorizationUrl: string; status: string };
    expect(consent).toMatchObject({ code: 'consent_required', status: 'pending', sessionId: expect.stringMatching(/^[A-Za-z0-9_-]{16,64}$/) });
    expect(consent.authorizationUrl).toContain(`/consent/${consent.sessionId}`);

    const readable = await mandate(args, { env });
    expect(readable.code).toBe(7);
    expect(readable.stdout).toBe('');
    expect(readable.stderr).toContain('consent required: the person must approve this first, at');
    expect(readable.stderr).toMatch(/^ {2}http:\/\/\S+\/consent\/[A-Za-z0-9_-]+\?tenant=acme$/m);
    expect(readable.stderr).toMatch(/^ {2}session {2}[A-Za-z0-9_-]+ \(pending\)$/m);
    expect(readable.stderr).toContain('then ask again with --session-id');

    const again = await mandate([...args, '--session-id', consent.sessionId], { env });
    expect(again.code).toBe(7);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain(`consent required: session ${consent.sessionId} is still waiting for the person`);
    expect(again.stderr).toContain(`then ask again with --session-id ${consent.sessionId}`);
  });

  it('api-key: prints the key alone on stdout (--json: the answer)', async () => {
    const run = ok(await mandate(['credential', 'api-key', '--provider', 'weather', '--wat-file', watFile]));
    expect(run.stdout).toBe(`${WEATHER_KEY}\n`);
    expect(run.stderr).not.toContain(WEATHER_KEY);
    expect(JSON.parse(ok(await mandate(['credential', 'api-key', '--provider', 'weather', '--wat-env', 'REPORT_WAT', '--json'], { env: { REPORT_WAT: machineWat } })).stdout)).toEqual({ apiKey: WEATHER_KEY });
  });

  it('refuses a WAT on the command line, no WAT, a workload the provider does not allow and the wrong kind of provider', async () => {
    const cases: [args: string[], code: number, message: string, env?: Record<string, string>][] = [
      [['oauth2-token', '--provider', 'reporting', '--flow', 'M2M', '--wat', machineWat], 2, '--wat takes only "-" (read the WAT from stdin)'],
      [['api-key', '--provider', 'weather'], 2, "give the workload's WAT"],
      [['oauth2-token', '--provider', 'reporting', '--wat-file', watFile], 2, "required option '--flow <flow>' not specified"],
      [['oauth2-token', '--provider', 'reporting', '--flow', 'm2m', '--wat-file', watFile], 2, 'Allowed choices are M2M, USER_FEDERATION'],
      [['api-key', '--provider', 'reporting', '--wat-file', watFile], 2, 'invalid_request: provider reporting is an oauth2 provider'],
      [['oauth2-token', '--provider', 'weather', '--flow', 'M2M', '--wat-file', watFile], 2, 'invalid_request: provider weather is an api-key provider'],
      [['api-key', '--provider', 'weather', '--wat-env', 'USER_WAT'], 5, 'access_denied: workload sales-agent may not use provider weather', { USER_WAT: userWat }],
      [['api-key', '--provider', 'no-such-provider', '--wat-file', watFile], 3, 'not_found'],
    ];
    const results = await Promise.all(cases.map(([args, , , env]) => mandate(['credential', ...args], env ? { env } : {})));
    for (const [i, run] of results.entries()) {
      const [args, code, message] = cases[i]!;
      expect(run.code, args.join(' ')).toBe(code);
      expect(run.stderr, args.join(' ')).toContain(message);
      expect(run.stdout, args.join(' ')).toBe('');
    }
    expect(results[0]!.stderr).toContain('Nothing was sent.');
  });

  it('never printed a WAT, nor the API key or an access token except on stdout where asked', () => {
    expect(runs.length).toBeGreaterThan(15);
    for (const run of runs) {
      expect(run.stderr).not.toContain(machineWat);
      expect(run.stderr).not.toContain(userWat);
      expect(run.stdout).not.toContain(machineWat);
      expect(run.stdout).not.toContain(userWat);
      expect(run.stderr).not.toContain(WEATHER_KEY);
      expect(run.stderr).not.toMatch(/eyJ[\w-]{10,}/);
    }
  });
});
