import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import { USER_ID_ISSUER, type Workload } from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { jwksOverNats, WatVerifier } from '@mandate/wat';
import { directoryService } from '@mandate/directory/module';
import { authorizerEnvSchema, authorizerService } from '@mandate/authorizer/module';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate token commands against the authorizer service');
const AUDIENCE = 'https://crm.acme.example';

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate token against the directory and authorizer over a real nats-server', { timeout: 90_000 }, () => {
  let nats: NatsServerHandle;
  let directory: RunningService;
  let authorizer: RunningService;
  let nc: NatsConnection;
  let verifier: WatVerifier;
  let idp: TestIdp;
  let dir: string;
  let agentKey: string;
  let agentPublicKey: string;

  const mandate = (args: string[], stdin?: string) => runCli(args, { env: { NATS_URL: nats.url, MANDATE_TENANT: 'acme' }, ...(stdin !== undefined ? { stdin } : {}) });
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };
  /** A WAT must appear on stdout only: never on stderr, never in an error. */
  const onlyOnStdout = (run: CliRun, token: string) => {
    expect(run.stderr).not.toContain(token);
    expect(run.stderr).not.toMatch(/eyJ[\w-]{10,}/);
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-token-'));
    const env = authorizerEnvSchema.parse({
      NATS_URL: nats.url,
      LOG_LEVEL: 'silent',
      MANDATE_DATA_DIR: join(dir, 'data'),
      AUTHORIZER_HTTP_PORT: '0',
      WAT_KEY_ACTIVATION_DELAY_SECONDS: '0',
    });
    directory = await runService(directoryService, env, { logger: createLogger('directory', { level: 'silent' }) });
    authorizer = await runService(authorizerService, env, { logger: createLogger('authorizer', { level: 'silent' }) });
    nc = await connectToBus({ servers: nats.url, name: 'cli-token-test' });
    verifier = new WatVerifier({ jwks: jwksOverNats(new BusClient(nc)) });
    idp = await startTestIdp();

    // Set up as an operator would, with the CLI.
    agentKey = join(dir, 'agent.jwk.json');
    agentPublicKey = join(dir, 'agent.jwk.pub.json');
    ok(await mandate(['workload', 'keygen', '--out', agentKey]));
    ok(await mandate(['workload', 'create', 'report-agent', '--public-key', agentPublicKey]));
    ok(await mandate(['workload', 'create', 'trusted-backend', '--allow-user-id', '--public-key', agentPublicKey]));
    ok(await mandate(['workload', 'create', 'sales-agent', '--public-key', agentPublicKey]));
    const guarded = ok(await mandate(['workload', 'authorizer', 'set', 'sales-agent', '--discovery-url', idp.discoveryUrl, '--audience', AUDIENCE, '--claim', 'dept equals sales', '--json']));
    expect((JSON.parse(guarded.stdout) as Workload).authorizer?.discoveryUrl).toBe(idp.discoveryUrl);
  });

  afterAll(async () => {
    await nc?.close();
    await authorizer?.stop();
    await directory?.stop();
    await idp?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('for-workload: signs a client assertion with the key file and prints the WAT alone on stdout', async () => {
    const run = ok(await mandate(['token', 'for-workload', '--workload', 'report-agent', '--key', agentKey]));
    const lines = run.stdout.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('');
    const token = lines[0]!;
    onlyOnStdout(run, token);
    expect(await verifier.verify(token, { tenant: 'acme', workload: 'report-agent' })).toMatchObject({ sub: 'report-agent', bnd: 'workload' });
  });

  it('for-user: --json prints the whole result, with --decode the claims too', async () => {
    const run = ok(await mandate(['token', 'for-user', '--workload', 'trusted-backend', '--user-id', 'sarah@acme.example', '--key', agentKey, '--json', '--decode']));
    const result = JSON.parse(run.stdout) as { token: string; tokenType: string; expiresIn: number; expiresAt: string; claims: Record<string, unknown> };
    expect(result).toMatchObject({ tokenType: 'wat+jwt', expiresIn: expect.any(Number), expiresAt: expect.any(String) });
    expect(result.claims).toMatchObject({ workload: 'trusted-backend', tenant: 'acme', bnd: 'user-id', user: { iss: USER_ID_ISSUER, sub: 'sarah@acme.example' } });
    onlyOnStdout(run, result.token);
    expect(await verifier.verify(result.token, { tenant: 'acme', workload: 'trusted-backend', user: { iss: USER_ID_ISSUER, sub: 'sarah@acme.example' } })).toBeTruthy();

    const denied = await mandate(['token', 'for-user', '--workload', 'report-agent', '--user-id', 'sarah', '--key', agentKey]);
    expect(denied.code).toBe(5);
    expect(denied.stderr).toContain('access_denied: this workload may not ask for a token for a bare user id');
    expect(denied.stderr).toContain('reason: user_id_tokens_not_allowed');
    expect(denied.stdout).toBe('');
  });

  it('for-jwt: takes the user JWT from stdin or @file, and --decode prints the claims as a table after the token', async () => {
    const userToken = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE, claims: { dept: 'sales' } });
    const fromStdin = ok(await mandate(['token', 'for-jwt', '--workload', 'sales-agent', '--key', agentKey, '--jwt', '-', '--decode'], `${userToken}\n`));
    const [token, blank, header, ...rows] = fromStdin.stdout.split('\n');
    expect(blank).toBe('');
    expect(header).toMatch(/^claim\s+value$/);
    expect(rows.join('\n')).toMatch(/^bnd\s+user-jwt$/m);
    expect(rows.join('\n')).toMatch(new RegExp(`^user\\s+\\{"iss":"${idp.issuer}","sub":"sarah"\\}$`, 'm'));
    expect(rows.join('\n')).toMatch(/^exp\s+\d+ \(\d{4}-\d\d-\d\dT/m);
    onlyOnStdout(fromStdin, token!);
    expect(fromStdin.stderr).not.toContain(userToken);
    expect(await verifier.verify(token!, { tenant: 'acme', workload: 'sales-agent', user: { iss: idp.issuer, sub: 'sarah' } })).toBeTruthy();

    await writeFile(join(dir, 'user.jwt'), `Bearer ${userToken}`);
    const fromFile = ok(await mandate(['token', 'for-jwt', '--workload', 'sales-agent', '--key', agentKey, '--jwt', `@${join(dir, 'user.jwt')}`]));
    expect(fromFile.stdout.trim().split('\n')).toHaveLength(1);

    // Refusals name the reason and never echo the token.
    const wrongDept = await idp.userAccessToken({ sub: 'mallory', audience: AUDIENCE, claims: { dept: 'finance' } });
    const refused = await mandate(['token', 'for-jwt', '--workload', 'sales-agent', '--key', agentKey, '--jwt', wrongDept]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('access_denied: a required custom claim does not match');
    expect(refused.stderr).toContain('reason: claim_mismatch');
    expect(refused.stderr + refused.stdout).not.toContain(wrongDept);
    const garbage = await mandate(['token', 'for-jwt', '--workload', 'sales-agent', '--key', agentKey, '--jwt', 'eyJub3QiOiJhIHRva2VuIn0.e30.c2ln']);
    expect(garbage.code).toBe(5);
    expect(garbage.stderr).toContain('unauthenticated: ');
    expect(garbage.stderr).not.toContain('eyJub3Qi');
    const empty = await mandate(['token', 'for-jwt', '--workload', 'sales-agent', '--key', agentKey, '--jwt', '-'], '  \n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('no token given: stdin is empty');
  });

  it('refuses what cannot prove the workload, with the exit code of its error', async () => {
    const otherKey = join(dir, 'other.jwk.json');
    ok(await mandate(['workload', 'keygen', '--out', otherKey]));
    const unknownKey = await mandate(['token', 'for-workload', '--workload', 'report-agent', '--key', otherKey]);
    expect(unknownKey.code).toBe(5);
    expect(unknownKey.stderr).toContain('reason: assertion_unknown_key');

    const wrongAudience = await mandate(['token', 'for-workload', '--workload', 'report-agent', '--key', agentKey, '--audience', 'urn:someone-else']);
    expect(wrongAudience.code).toBe(5);
    expect(wrongAudience.stderr).toContain('reason: assertion_wrong_audience');

    const publicOnly = await mandate(['token', 'for-workload', '--workload', 'report-agent', '--key', agentPublicKey]);
    expect(publicOnly.code).toBe(2);
    expect(publicOnly.stderr).toContain('is a public key; --key needs the private JWK');

    const noSuchWorkload = await mandate(['token', 'for-workload', '--workload', 'nobody-here', '--key', agentKey]);
    // An unknown workload looks like a bad key to an unauthenticated caller (no probing for names).
    expect(noSuchWorkload.code).toBe(5);
    expect(noSuchWorkload.stderr).toContain('reason: assertion_unknown_key');

    const badName = await mandate(['token', 'for-workload', '--workload', 'a*', '--key', agentKey]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('  - workload: must be 3-255 characters');
    // The private key stays where it was: nothing of it in any output.
    const d = (JSON.parse(await readFile(agentKey, 'utf8')) as { d: string }).d;
    for (const run of [unknownKey, wrongAudience, publicOnly, noSuchWorkload, badName]) expect(run.stderr + run.stdout).not.toContain(d);
  });
});
