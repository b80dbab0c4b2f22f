import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BusClient } from '@mandate/bus';
import { PRESET_NAMES, providerGetEndpoint, USER_ID_ISSUER, type ProviderView } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from '@mandate/vault/testing';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate provider commands against the vault service');

/** Every secret any case hands the CLI; none may ever be printed. */
const SECRETS = {
  fileKey: 'weather-key-from-file-4b1d93',
  stdinKey: 'maps-key-from-stdin-c07e21',
  envKey: 'weather-key-from-env-9a8f02',
  oktaSecret: 'okta-client-secret-e55a17',
  stdinSecret: 'acme-client-secret-stdin-3c6d90',
  plainSecret: 'plain-command-line-secret-77b2f4',
  accessToken: 'stored-access-token-1f0e6b',
  refreshToken: 'stored-refresh-token-82ad4c',
};

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate provider against the vault service over a real nats-server', { timeout: 90_000 }, () => {
  let h: TestSystem;
  let bus: BusClient;
  let dir: string;
  const runs: CliRun[] = [];
  /** Runs the built CLI against this test's NATS, in tenant `acme` unless the args say otherwise. */
  const mandate = async (args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}) => {
    const run = await runCli(args, { ...options, env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme', ...options.env } });
    runs.push(run);
    return run;
  };
  const json = <T>(run: CliRun): T => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return JSON.parse(run.stdout) as T;
  };
  const secretFile = async (name: string, content: string) => {
    const file = join(dir, name);
    await writeFile(file, content, { mode: 0o600 });
    return file;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-provider-'));
    h = await startSystem({ services: ['vault'] });
    bus = h.bus;
  });

  afterAll(async () => {
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates API key providers from a file and from stdin, reads, lists, rotates and deletes them', async () => {
    const keyFile = await secretFile('weather.key', `${SECRETS.fileKey}\n`);
    const created = json<ProviderView>(
      await mandate(['provider', 'create', 'weather', '--api-key', '--key-file', keyFile, '--allow-workload', 'report-agent', '--description', 'Weather API', '--json']),
    );
    expect(created).toMatchObject({ tenant: 'acme', name: 'weather', kind: 'api-key', description: 'Weather API', allowedWorkloads: ['report-agent'], secrets: ['apiKey'] });

    const fromStdin = await mandate(['provider', 'create', 'maps', '--api-key', '--key', '-'], { stdin: SECRETS.stdinKey });
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(fromStdin.stdout).toMatch(/^name\s+maps$/m);
    expect(fromStdin.stdout).toMatch(/^kind\s+api-key$/m);
    expect(fromStdin.stdout).toMatch(/^secrets\s+apiKey$/m);

    const shown = await mandate(['provider', 'get', 'weather']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^description\s+Weather API$/m);
    expect(shown.stdout).toMatch(/^allowed workloads\s+report-agent$/m);
    expect(shown.stdout).toMatch(/^secrets\s+apiKey$/m);
    expect(shown.stdout).toMatch(new RegExp(`^revision\\s+${created.revision}$`, 'm'));
    expect(shown.stdout).not.toMatch(/client id/);

    const list = json<{ items: ProviderView[] }>(await mandate(['provider', 'list', '--json']));
    expect(list.items.map((p) => p.name).sort()).toEqual(['maps', 'weather']);
    const table = await mandate(['provider', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^name\s+kind\s+vendor\s+client id\s+workloads\s+secrets\s+revision\s+updated$/);
    expect(table.stdout).toMatch(/^weather\s+api-key\s+-\s+-\s+report-agent\s+apiKey\s+/m);

    // A new key from an environment variable rotates it; only the given fields change.
    const rotated = json<ProviderView>(
      await mandate(['provider', 'update', 'weather', '--key-env', 'WEATHER_KEY', '--if-revision', String(created.revision), '--json'], { env: { WEATHER_KEY: SECRETS.envKey } }),
    );
    expect(rotated).toMatchObject({ description: 'Weather API', allowedWorkloads: ['report-agent'], secrets: ['apiKey'] });
    expect(rotated.revision).toBeGreaterThan(created.revision);
    const stale = await mandate(['provider', 'update', 'weather', '--description', 'v3', '--if-revision', String(created.revision)]);
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain('conflict: provider weather was changed by someone else');
    const unset = await mandate(['provider', 'update', 'weather', '--key-env', 'MANDATE_TEST_NO_SUCH_VARIABLE']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('--key-env: that environment variable is not set');
    const wrongKind = await mandate(['provider', 'update', 'weather', '--client-id', 'x']);
    expect(wrongKind.code).toBe(2);
    expect(wrongKind.stderr).toContain('  - set.clientId: not a field of an API key provider');
    const nothing = await mandate(['provider', 'update', 'weather']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to change');

    const deleted = await mandate(['provider', 'delete', 'weather', '--if-revision', String(rotated.revision)]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain('deleted provider weather from tenant acme');
    const missingOnes = [['get', 'weather'], ['delete', 'weather'], ['update', 'weather', '--description', 'x'], ['revoke', 'weather', '--user-sub', 'sarah']];
    const gones = await Promise.all(missingOnes.map((args) => mandate(['provider', ...args])));
    for (const [i, gone] of gones.entries()) {
      expect(gone.code, missingOnes[i]!.join(' ')).toBe(3);
      expect(gone.stderr).toContain('not_found: no provider named weather in this tenant');
      expect(gone.stdout).toBe('');
    }
  });

  it('creates OAuth2 providers from a preset with its parameter and from explicit endpoints', async () => {
    const secretPath = await secretFile('okta.secret', SECRETS.oktaSecret);
    const okta = await mandate([
      'provider', 'create', 'okta-prod', '--oauth2', '--vendor', 'okta', '--param', 'domain=dev-1.okta.com',
      '--client-id', '0oa1client', '--client-secret-file', secretPath,
      '--default-scope', 'okta.users.read', '--default-scope', 'openid', '--allow-workload', 'report-agent',
    ]);
    expect(okta.code, okta.stderr).toBe(0);
    expect(okta.stdout).toMatch(/^vendor\s+okta \(Okta\)$/m);
    expect(okta.stdout).toMatch(/^params\s+domain=dev-1\.okta\.com$/m);
    expect(okta.stdout).toMatch(/^endpoints\s+authorization https:\/\/dev-1\.okta\.com\/oauth2\/v1\/authorize\n\s+token https:\/\/dev-1\.okta\.com\/oauth2\/v1\/token$/m);
    expect(okta.stdout).toMatch(/^client id\s+0oa1client$/m);
    expect(okta.stdout).toMatch(/^client auth\s+client_secret_basic$/m);
    expect(okta.stdout).toMatch(/^default scopes\s+okta\.users\.read\n\s+openid$/m);
    expect(okta.stdout).toMatch(/^secrets\s+clientSecret$/m);

    const custom = json<ProviderView>(
      await mandate(
        [
          'provider', 'create', 'acme-idp', '--oauth2', '--vendor', 'custom',
          '--token-endpoint', 'https://auth.acme.example/oauth/token', '--authorization-endpoint', 'https://auth.acme.example/oauth/authorize',
          '--issuer', 'https://auth.acme.example', '--client-id', 'mandate', '--client-secret', '-', '--client-auth', 'client_secret_post', '--json',
        ],
        { stdin: `${SECRETS.stdinSecret}\n` },
      ),
    );
    expect(custom).toMatchObject({
      kind: 'oauth2',
      vendor: 'custom',
      metadata: { tokenEndpoint: 'https://auth.acme.example/oauth/token', authorizationEndpoint: 'https://auth.acme.example/oauth/authorize', issuer: 'https://auth.acme.example' },
      clientId: 'mandate',
      clientAuthMethod: 'client_secret_post',
      secrets: ['clientSecret'],
    });
    expect(custom).not.toHaveProperty('discoveryUrl');

    // private_key_jwt from a key file; with --client-key alone it is the default method.
    const keyFile = join(dir, 'client.jwk.json');
    expect((await mandate(['workload', 'keygen', '--out', keyFile, '--kid', 'client-key-1'])).code).toBe(0);
    const privateD = (JSON.parse(await readFile(keyFile, 'utf8')) as { d: string }).d;
    const keyed = await mandate(['provider', 'create', 'keyed', '--oauth2', '--vendor', 'custom', '--discovery-url', 'https://idp.acme.example/.well-known/openid-configuration', '--client-id', 'mandate', '--client-key', keyFile, '--json']);
    expect(json<ProviderView>(keyed)).toMatchObject({ clientAuthMethod: 'private_key_jwt', secrets: ['clientPrivateJwk'], discoveryUrl: 'https://idp.acme.example/.well-known/openid-configuration' });
    expect(keyed.stdout + keyed.stderr).not.toContain(privateD);

    // Rotating the client secret from stdin.
    const rotated = json<ProviderView>(await mandate(['provider', 'update', 'acme-idp', '--client-secret', '-', '--json'], { stdin: SECRETS.oktaSecret }));
    expect(rotated.revision).toBeGreaterThan(custom.revision);
    expect(rotated.secrets).toEqual(['clientSecret']);
  });

  it('refuses a preset without its required parameter, printing the issue (exit 2)', async () => {
    const secretPath = await secretFile('ms.secret', SECRETS.oktaSecret);
    const noTenant = await mandate(['provider', 'create', 'entra', '--oauth2', '--vendor', 'microsoft', '--client-id', 'app', '--client-secret-file', secretPath]);
    expect(noTenant.code).toBe(2);
    expect(noTenant.stderr).toContain('invalid_request: invalid request');
    expect(noTenant.stderr).toContain('  - vendorParams.tenantId: microsoft needs a valid tenantId');
    const badDomain = await mandate(['provider', 'create', 'okta-bad', '--oauth2', '--vendor', 'okta', '--param', 'domain=not a host', '--client-id', 'app', '--client-secret-file', secretPath]);
    expect(badDomain.code).toBe(2);
    expect(badDomain.stderr).toContain('  - vendorParams.domain: okta needs a valid domain');
    const presetWithDiscovery = await mandate([
      'provider', 'create', 'google-x', '--oauth2', '--vendor', 'google', '--discovery-url', 'https://accounts.google.com/.well-known/openid-configuration', '--client-id', 'app', '--client-secret-file', secretPath,
    ]);
    expect(presetWithDiscovery.code).toBe(2);
    expect(presetWithDiscovery.stderr).toContain('  - vendor: a preset brings its own endpoints');
    const noSecret = await mandate(['provider', 'create', 'no-secret', '--oauth2', '--vendor', 'github', '--client-id', 'app']);
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('  - clientSecret: required for client_secret_basic');
    const gets = await Promise.all(['entra', 'okta-bad', 'google-x', 'no-secret'].map((name) => mandate(['provider', 'get', name])));
    expect(gets.map((run) => run.code)).toEqual([3, 3, 3, 3]);
  });

  it('refuses a secret given as a plain command-line value, and other usage errors, before sending anything', async () => {
    const emptyKeyFile = await secretFile('empty.key', '\n');
    const cases: [args: string[], code: number, message: string, stdin?: string][] = [
      [['create', 'leaky', '--oauth2', '--vendor', 'github', '--client-id', 'app', '--client-secret', SECRETS.plainSecret], 2, '--client-secret takes only "-" (read the client secret from stdin)'],
      [['create', 'leaky', '--api-key', '--key', SECRETS.plainSecret], 2, '--key takes only "-"'],
      [['update', 'maps', '--key', SECRETS.plainSecret], 2, '--key takes only "-"'],
      [['create', 'kindless', '--client-id', 'app'], 2, 'say which kind of provider: --oauth2 or --api-key'],
      [['create', 'both', '--oauth2', '--api-key'], 2, "option '--oauth2' cannot be used with option '--api-key'"],
      [['create', 'two', '--api-key', '--key-file', 'a', '--key-env', 'B'], 2, 'cannot be used with option'],
      [['create', 'keyless', '--api-key'], 2, 'an --api-key provider needs its key'],
      [['create', 'mixed', '--api-key', '--key', '-', '--vendor', 'google'], 2, '--vendor is for --oauth2 providers', SECRETS.stdinKey],
      [['create', 'vendorless', '--oauth2', '--client-id', 'app'], 2, '--oauth2 needs --vendor'],
      [['create', 'x-idp', '--oauth2', '--vendor', 'custom', '--client-id', 'a', '--issuer', 'https://x.example'], 2, '--issuer go with --token-endpoint'],
      [['create', 'empty', '--api-key', '--key-file', emptyKeyFile], 2, 'is empty. Nothing was sent.'],
      [['update', 'maps', '--client-secret', '-', '--key', '-'], 2, 'only one secret can come from stdin'],
    ];
    const results = await Promise.all(cases.map(([args, , , stdin]) => mandate(['provider', ...args], stdin === undefined ? {} : { stdin })));
    for (const [i, run] of results.entries()) {
      const [args, code, message] = cases[i]!;
      expect(run.code, args.join(' ')).toBe(code);
      expect(run.stderr, args.join(' ')).toContain(message);
      expect(run.stdout).toBe('');
    }
    expect(results[0]!.stderr).toContain('Nothing was sent.');
    expect((await mandate(['provider', 'get', 'leaky'])).code).toBe(3);
  });

  it('lists the vendor presets without NATS', async () => {
    const deadNats = { NATS_URL: `nats://127.0.0.1:${await freePort()}` };
    const presets = await mandate(['provider', 'presets'], { env: deadNats });
    expect(presets.code, presets.stderr).toBe(0);
    expect(presets.stdout).toMatch(/^name\s+okta\ndisplay name\s+Okta\nparams\s+--param domain=…/m);
    expect(presets.stdout).toMatch(/^token\s+https:\/\/\{domain\}\/oauth2\/v1\/token$/m);
    expect(presets.stdout).toMatch(/^name\s+google\ndisplay name\s+Google\nparams\s+none$/m);
    expect(presets.stdout).toMatch(/^name\s+microsoft\ndisplay name\s+Microsoft Entra ID\nparams\s+--param tenantId=…/m);
    expect(presets.stderr).toContain('--vendor custom');
    const asJson = json<{ name: string; displayName: string; params: string[]; tokenEndpoint: string }[]>(await mandate(['provider', 'presets', '--json'], { env: deadNats }));
    expect(asJson.map((p) => p.name)).toEqual(PRESET_NAMES);
    expect(asJson.find((p) => p.name === 'salesforce')).toMatchObject({ displayName: 'Salesforce', params: ['instance'] });
  });

  it("revokes a user's stored tokens: nothing stored, then stored tokens at a provider without revocation", async () => {
    const nothing = await mandate(['provider', 'revoke', 'okta-prod', '--user-sub', 'sarah@acme.example']);
    expect(nothing.code, nothing.stderr).toBe(0);
    expect(nothing.stdout).toMatch(/^provider\s+okta-prod$/m);
    expect(nothing.stdout).toMatch(new RegExp(`^user\\s+sarah@acme\\.example \\(${USER_ID_ISSUER}\\)$`, 'm'));
    expect(nothing.stdout).toMatch(/^deleted\s+0$/m);
    expect(nothing.stdout).toMatch(/^upstream\s+nothing_to_revoke$/m);
    expect(json(await mandate(['provider', 'revoke', 'okta-prod', '--user-sub', 'sarah@acme.example', '--user-iss', 'https://idp.acme.example', '--json']))).toEqual({
      deleted: 0,
      upstream: 'nothing_to_revoke',
    });

    // acme-idp has explicit endpoints and no revocation endpoint: deleted here, not_supported there.
    const user = { iss: 'https://idp.acme.example', sub: 'sarah' };
    await (await VaultSeed.open(h)).userTokens('acme', 'acme-idp', user, ['files.read'], { accessToken: SECRETS.accessToken, refreshToken: SECRETS.refreshToken, expiresIn: 3600 });
    const revoked = await mandate(['provider', 'revoke', 'acme-idp', '--user-sub', 'sarah', '--user-iss', user.iss]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^deleted\s+1$/m);
    expect(revoked.stdout).toMatch(/^upstream\s+not_supported$/m);
    expect(revoked.stderr).toContain('has no revocation endpoint');
    expect(json(await mandate(['provider', 'revoke', 'acme-idp', '--user-sub', 'sarah', '--user-iss', user.iss, '--json']))).toEqual({ deleted: 0, upstream: 'nothing_to_revoke' });
    // The provider itself is untouched.
    expect((await bus.request(providerGetEndpoint, { tenant: 'acme', name: 'acme-idp' })).secrets).toEqual(['clientSecret']);
  });

  it("sets, replaces and clears an OAuth2 provider's token parameters (RFC 8707 resource, audience)", async () => {
    const secretPath = await secretFile('api.secret', SECRETS.oktaSecret);
    const discovery = ['--vendor', 'custom', '--discovery-url', 'https://idp.acme.example/.well-known/openid-configuration', '--client-id', 'mandate', '--client-secret-file', secretPath];
    const created = json<ProviderView>(
      await mandate(['provider', 'create', 'acme-api', '--oauth2', ...discovery, '--token-param', 'resource=https://api.acme.example', '--token-param', 'audience=https://acme.example', '--json']),
    );
    expect(created.tokenParameters).toEqual({ resource: 'https://api.acme.example', audience: 'https://acme.example' });
    const shown = await mandate(['provider', 'get', 'acme-api']);
    expect(shown.stdout).toMatch(/^token params\s+resource=https:\/\/api\.acme\.example\n\s+audience=https:\/\/acme\.example$/m);

    // On update the option replaces every token parameter; the clear option removes them.
    const replaced = json<ProviderView>(await mandate(['provider', 'update', 'acme-api', '--token-param', 'resource=https://v2.api.acme.example', '--json']));
    expect(replaced.tokenParameters).toEqual({ resource: 'https://v2.api.acme.example' });
    expect(replaced.secrets).toEqual(['clientSecret']);
    expect(json<ProviderView>(await mandate(['provider', 'update', 'acme-api', '--clear-token-params', '--json'])).tokenParameters).toEqual({});
    expect((await mandate(['provider', 'get', 'acme-api'])).stdout).toMatch(/^token params\s+none$/m);

    const cases: [args: string[], code: number, message: string][] = [
      [['update', 'acme-api', '--token-param', 'resource=x', '--clear-token-params'], 2, '--clear-token-params and --token-param contradict each other'],
      [['update', 'acme-api', '--token-param', 'resource'], 2, 'must be key=value'],
      [['update', 'acme-api', '--token-param', 'resource=a', '--token-param', 'resource=b'], 2, 'token parameter resource is given twice'],
      [['update', 'acme-api', '--token-param', 'grant_type=password'], 2, '  - set.tokenParameters: protocol parameters are set by the vault, not here'],
      [['update', 'acme-api', '--token-param', 'Resource=x'], 2, '  - set.tokenParameters.Resource: Invalid key in record'],
      [['update', 'maps', '--token-param', 'resource=x'], 2, '  - set.tokenParameters: not a field of an API key provider'],
      [['create', 'keyed-api', '--api-key', '--key-file', secretPath, '--token-param', 'resource=x'], 2, '--token-param is for --oauth2 providers'],
    ];
    const results = await Promise.all(cases.map(([args]) => mandate(['provider', ...args])));
    for (const [i, run] of results.entries()) {
      const [args, code, message] = cases[i]!;
      expect(run.code, args.join(' ')).toBe(code);
      expect(run.stderr, args.join(' ')).toContain(message);
      expect(run.stdout).toBe('');
    }
    expect((await bus.request(providerGetEndpoint, { tenant: 'acme', name: 'acme-api' })).tokenParameters).toEqual({});
  });

  it('never printed a secret, in any command above', () => {
    expect(runs.length).toBeGreaterThan(30);
    for (const run of runs) {
      for (const secret of Object.values(SECRETS)) {
        expect(run.stdout, secret).not.toContain(secret);
        expect(run.stderr, secret).not.toContain(secret);
      }
    }
  });
});
