import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import { workloadCreateEndpoint, workloadGetEndpoint, type Workload } from '@mandate/contracts';
import { baseEnvSchema } from '@mandate/config';
import { createLogger } from '@mandate/telemetry';
import { auditRecordsOf, freePort, natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { directoryService } from '@mandate/directory/module';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate workload commands against the directory service');

/** The built CLI, with only the variables a test gives on top of this process's environment. */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { env });

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate workload against the directory service over a real nats-server', { timeout: 90_000 }, () => {
  let nats: NatsServerHandle;
  let service: RunningService;
  let nc: NatsConnection;
  let bus: BusClient;
  let audit: Subscription;
  let dir: string;
  const auditRecords: { subject: string; body: { actor?: { admin?: string; workload?: string } } }[] = [];
  /** Runs the CLI against this test's NATS, in tenant `acme` unless the args say otherwise. */
  const mandate = (...args: string[]) => cli(args, { NATS_URL: nats.url, MANDATE_TENANT: 'acme' });
  const json = <T>(run: CliRun): T => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return JSON.parse(run.stdout) as T;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    nats = await startNatsServer();
    const env = baseEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent' });
    service = await runService(directoryService, env, { logger: createLogger('directory', { level: 'silent' }) });
    nc = await connectToBus({ servers: nats.url, name: 'cli-directory-test' });
    bus = new BusClient(nc, { defaultTimeoutMs: 5_000 });
    audit = nc.subscribe('mandate.audit.>', { callback: (_e, m) => void auditRecords.push(...auditRecordsOf(m).map((body) => ({ subject: m.subject, body }))) });
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-'));
  });

  afterAll(async () => {
    audit?.unsubscribe();
    await nc?.close();
    await service?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates, reads, lists, updates and deletes a workload (--json round trip)', async () => {
    const created = json<Workload>(
      await mandate(
        'workload', 'create', 'sales-brief',
        '--description', 'Prepares sales briefs',
        '--return-url', 'https://app.acme.example/return',
        '--return-url', 'http://localhost:3000/cb',
        '--allow-user-id',
        '--tag', 'team=sales', '--tag', 'cost-centre=42',
        '--actor', 'ops@acme',
        '--json',
      ),
    );
    expect(created).toMatchObject({
      tenant: 'acme',
      name: 'sales-brief',
      description: 'Prepares sales briefs',
      allowedReturnUrls: ['https://app.acme.example/return', 'http://localhost:3000/cb'],
      allowUserIdTokens: true,
      tags: { team: 'sales', 'cost-centre': '42' },
      authorizer: null,
    });
    await expect.poll(() => auditRecords.find((r) => r.subject === 'mandate.audit.acme.directory.workload-create')?.body.actor?.admin).toBe('ops@acme');

    expect(json<Workload>(await mandate('workload', 'get', 'sales-brief', '--json'))).toEqual(created);
    const human = await mandate('workload', 'get', 'sales-brief');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^name\s+sales-brief$/m);
    expect(human.stdout).toMatch(/^return URLs\s+https:\/\/app\.acme\.example\/return\n\s+http:\/\/localhost:3000\/cb$/m);
    expect(human.stdout).toMatch(/^allow user id\s+yes$/m);
    expect(human.stdout).toMatch(/^tags\s+team=sales\n\s+cost-centre=42$/m);
    expect(human.stdout).toMatch(/^authorizer\s+none$/m);
    expect(human.stdout).toMatch(new RegExp(`^revision\\s+${created.revision}$`, 'm'));

    const list = json<{ items: Workload[] }>(await mandate('workload', 'list', '--json'));
    expect(list.items.map((w) => w.name)).toContain('sales-brief');

    // Only the given fields change; the default actor is cli:<user>.
    const updated = json<Workload>(await mandate('workload', 'update', 'sales-brief', '--description', 'v2', '--no-allow-user-id', '--if-revision', String(created.revision), '--json'));
    expect(updated).toMatchObject({ description: 'v2', allowUserIdTokens: false, allowedReturnUrls: created.allowedReturnUrls, tags: created.tags });
    expect(updated.revision).not.toBe(created.revision);
    await expect
      .poll(() => auditRecords.find((r) => r.subject === 'mandate.audit.acme.directory.workload-update')?.body.actor?.admin)
      .toBe(`cli:${userInfo().username}`);

    const cleared = json<Workload>(await mandate('workload', 'update', 'sales-brief', '--clear-tags', '--json'));
    expect(cleared.tags).toEqual({});

    const stale = await mandate('workload', 'update', 'sales-brief', '--description', 'v3', '--if-revision', String(created.revision));
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain('conflict: workload sales-brief was changed by someone else');

    const nothing = await mandate('workload', 'update', 'sales-brief');
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to change');

    expect(json<{ deleted: boolean }>(await mandate('workload', 'delete', 'sales-brief', '--if-revision', String(cleared.revision), '--json'))).toEqual({ deleted: true });
    const gone = await mandate('workload', 'get', 'sales-brief');
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('not_found: no workload named sales-brief in this tenant');
    expect(gone.stdout).toBe('');
  });

  it('lists page by page, and --all follows every cursor with a note on stderr', async () => {
    for (let i = 0; i < 5; i++) await bus.request(workloadCreateEndpoint, { tenant: 'paged', name: `agent-${i}`, description: `number ${i}` });

    const first = await mandate('workload', 'list', '--tenant', 'paged', '--limit', '2');
    expect(first.code).toBe(0);
    expect(first.stdout.split('\n')[0]).toMatch(/^name\s+description\s+keys\s+authorizer\s+revision\s+updated$/);
    expect(first.stdout.trim().split('\n')).toHaveLength(3);
    const cursor = /--cursor (\S+)/.exec(first.stderr)?.[1];
    expect(cursor).toBeTruthy();
    const second = json<{ items: Workload[]; nextCursor?: string }>(await mandate('workload', 'list', '--tenant', 'paged', '--limit', '2', '--cursor', cursor!, '--json'));
    expect(second.items).toHaveLength(2);

    const all = await mandate('workload', 'list', '--tenant', 'paged', '--limit', '2', '--all', '--json');
    const names = json<{ items: Workload[]; nextCursor?: string }>(all);
    expect(names.items.map((w) => w.name).sort()).toEqual(['agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4']);
    expect(names.nextCursor).toBeUndefined();
    expect(all.stderr).toContain('fetching the next page');

    const empty = await mandate('workload', 'list', '--tenant', 'nobody');
    expect(empty).toMatchObject({ code: 0, stdout: 'no workloads in tenant nobody\n' });
    const badLimit = await mandate('workload', 'list', '--limit', 'many');
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain("option '--limit <n>' argument 'many' is invalid");
    const tooMany = await mandate('workload', 'list', '--limit', '5000');
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/invalid_request: invalid request\n\s+- limit: /);
  });

  it('generates a key pair and registers its public half; never overwrites a key file', async () => {
    const out = join(dir, 'agent.jwk.json');
    const keygen = await cli(['workload', 'keygen', '--out', out, '--kid', 'agent-key-1']);
    expect(keygen.code, keygen.stderr).toBe(0);
    const printed = JSON.parse(keygen.stdout) as Record<string, unknown>;
    expect(printed).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: 'agent-key-1', alg: 'EdDSA', use: 'sig' });
    expect(printed).not.toHaveProperty('d');
    expect(JSON.parse(await readFile(join(dir, 'agent.jwk.pub.json'), 'utf8'))).toEqual(printed);
    const privateJwk = JSON.parse(await readFile(out, 'utf8')) as Record<string, unknown>;
    expect(privateJwk).toMatchObject({ ...printed, d: expect.any(String) });
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(keygen.stdout + keygen.stderr).not.toContain(privateJwk['d'] as string);

    const again = await cli(['workload', 'keygen', '--out', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(privateJwk);

    const ec = await cli(['workload', 'keygen', '--out', join(dir, 'ec.json'), '--alg', 'ES256']);
    expect(ec.code, ec.stderr).toBe(0);
    const ecKey = JSON.parse(ec.stdout) as { kty: string; crv: string; kid: string };
    expect(ecKey).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(ecKey.kid).toMatch(/^[A-Za-z0-9_-]{43}$/); // the RFC 7638 thumbprint

    const created = json<Workload>(
      await mandate('workload', 'create', 'keyed-agent', '--public-key', join(dir, 'agent.jwk.pub.json'), '--public-key', join(dir, 'ec.pub.json'), '--json'),
    );
    expect(created.publicKeys.keys.map((k) => k.kid)).toEqual(['agent-key-1', ecKey.kid]);
    const shown = await mandate('workload', 'get', 'keyed-agent');
    expect(shown.stdout).toMatch(/^public keys\s+agent-key-1 \(OKP Ed25519 EdDSA\)$/m);

    // A JWK set file works too, and update replaces the keys.
    await writeFile(join(dir, 'set.json'), JSON.stringify({ keys: [printed] }));
    const updated = json<Workload>(await mandate('workload', 'update', 'keyed-agent', '--public-key', join(dir, 'set.json'), '--json'));
    expect(updated.publicKeys.keys.map((k) => k.kid)).toEqual(['agent-key-1']);
  });

  it('refuses a private key file before sending anything, without printing it', async () => {
    const out = join(dir, 'oops.jwk.json');
    expect((await cli(['workload', 'keygen', '--out', out])).code).toBe(0);
    const secret = (JSON.parse(await readFile(out, 'utf8')) as { d: string }).d;

    const refused = await mandate('workload', 'create', 'leaky-agent', '--public-key', out);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/oops\.jwk\.json: key \S+ is a private key \(it has "d"\)/);
    expect(refused.stderr + refused.stdout).not.toContain(secret);
    expect((await mandate('workload', 'get', 'leaky-agent')).code).toBe(3);

    await writeFile(join(dir, 'hmac.json'), JSON.stringify({ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }));
    const symmetric = await mandate('workload', 'create', 'leaky-agent', '--public-key', join(dir, 'hmac.json'));
    expect(symmetric.code).toBe(2);
    expect(symmetric.stderr).toContain('is a symmetric key');

    await writeFile(join(dir, 'junk.json'), 'not json at all');
    const junk = await mandate('workload', 'create', 'leaky-agent', '--public-key', join(dir, 'junk.json'));
    expect(junk.code).toBe(2);
    expect(junk.stderr).toContain('is not JSON');
  });

  it('prints invalid_request with each issue and exits 2; not_found exits 3', async () => {
    const badName = await mandate('workload', 'create', 'a/b');
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('invalid_request: invalid request');
    expect(badName.stderr).toContain('  - name: must be 3-255 characters of A-Z a-z 0-9 _ . -');

    const badUrl = await mandate('workload', 'create', 'good-name', '--return-url', 'http://app.example.com/cb', '--tenant', 'Upper');
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('  - tenant: tenant must be 1-63 lower-case letters');
    expect(badUrl.stderr).toContain('  - allowedReturnUrls.0: must be an absolute https URL (http only for localhost)');

    const badTag = await mandate('workload', 'create', 'good-name', '--tag', 'novalue');
    expect(badTag.code).toBe(2);
    expect(badTag.stderr).toContain("option '--tag <key=value>' argument 'novalue' is invalid. must be key=value");

    const missingOnes = [['get', 'no-such-agent'], ['delete', 'no-such-agent'], ['update', 'no-such-agent', '--description', 'x'], ['authorizer', 'clear', 'no-such-agent']];
    const runs = await Promise.all(missingOnes.map((args) => mandate('workload', ...args)));
    for (const [i, run] of runs.entries()) {
      expect(run.code, missingOnes[i]!.join(' ')).toBe(3);
      expect(run.stderr).toContain('not_found: no workload named no-such-agent in this tenant');
    }
    await bus.request(workloadCreateEndpoint, { tenant: 'acme', name: 'twin' });
    const twin = await mandate('workload', 'create', 'twin');
    expect(twin.code).toBe(4);
    expect(twin.stderr).toContain('conflict: a workload named twin already exists in this tenant');
  });

  it('sets the authorizer with every claim syntax, refuses a bad rule as a usage error, and clears it', async () => {
    await bus.request(workloadCreateEndpoint, { tenant: 'acme', name: 'guarded' });
    await writeFile(join(dir, 'claims.json'), JSON.stringify([{ claim: 'region', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] }]));
    const discoveryUrl = 'https://idp.acme.example/.well-known/openid-configuration';
    const set = json<Workload>(
      await mandate(
        'workload', 'authorizer', 'set', 'guarded',
        '--discovery-url', discoveryUrl,
        '--audience', 'https://api.acme.example', '--audience', 'api://agents',
        '--client', 'sales-app',
        '--scope', 'agents.invoke',
        '--claim', 'dept equals Sales Operations',
        '--claim', 'groups contains agent-users',
        '--claim', 'roles containsAny admin, operator ,',
        '--claims-json', join(dir, 'claims.json'),
        '--json',
      ),
    );
    expect(set.authorizer).toEqual({
      discoveryUrl,
      allowedAudiences: ['https://api.acme.example', 'api://agents'],
      allowedClients: ['sales-app'],
      allowedScopes: ['agents.invoke'],
      requiredClaims: [
        { claim: 'dept', valueType: 'string', operator: 'equals', value: 'Sales Operations' },
        { claim: 'groups', valueType: 'string[]', operator: 'contains', value: 'agent-users' },
        { claim: 'roles', valueType: 'string[]', operator: 'containsAny', value: ['admin', 'operator'] },
        { claim: 'region', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] },
      ],
    });
    const human = await mandate('workload', 'get', 'guarded');
    expect(human.stdout).toMatch(new RegExp(`^authorizer\\s+${discoveryUrl.replaceAll('.', '\\.')}$`, 'm'));
    expect(human.stdout).toMatch(/^\s+claims\s+dept equals Sales Operations\n\s+groups contains agent-users\n\s+roles containsAny admin,operator \(string\[\]\)$/m);

    const badRule = await mandate('workload', 'authorizer', 'set', 'guarded', '--discovery-url', discoveryUrl, '--audience', 'a', '--claim', 'dept is sales');
    expect(badRule.code).toBe(2);
    expect(badRule.stderr).toContain("option '--claim <rule>' argument 'dept is sales' is invalid");
    const emptyAny = await mandate('workload', 'authorizer', 'set', 'guarded', '--discovery-url', discoveryUrl, '--audience', 'a', '--claim', 'roles containsAny ,');
    expect(emptyAny.code).toBe(2);
    expect(emptyAny.stderr).toContain('containsAny needs at least one value');

    const noAudience = await mandate('workload', 'authorizer', 'set', 'guarded', '--discovery-url', discoveryUrl);
    expect(noAudience.code).toBe(2);
    expect(noAudience.stderr).toContain('  - authorizer.allowedAudiences: set allowedAudiences or allowedClients');
    const badDiscovery = await mandate('workload', 'authorizer', 'set', 'guarded', '--discovery-url', 'https://idp.acme.example/', '--client', 'c');
    expect(badDiscovery.code).toBe(2);
    expect(badDiscovery.stderr).toContain('  - authorizer.discoveryUrl: must be an https URL');
    const missingDiscovery = await mandate('workload', 'authorizer', 'set', 'guarded', '--client', 'c');
    expect(missingDiscovery.code).toBe(2);
    expect(missingDiscovery.stderr).toContain("required option '--discovery-url <url>' not specified");
    await writeFile(join(dir, 'bad-claims.json'), JSON.stringify([{ claim: 'x', valueType: 'string', operator: 'contains', value: 'a' }]));
    const badFile = await mandate('workload', 'authorizer', 'set', 'guarded', '--discovery-url', discoveryUrl, '--client', 'c', '--claims-json', join(dir, 'bad-claims.json'));
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toContain('  - authorizer.requiredClaims.0.valueType');

    const stale = await mandate('workload', 'authorizer', 'clear', 'guarded', '--if-revision', String(set.revision - 1));
    expect(stale.code).toBe(4);
    const cleared = json<Workload>(await mandate('workload', 'authorizer', 'clear', 'guarded', '--if-revision', String(set.revision), '--json'));
    expect(cleared.authorizer).toBeNull();
    expect((await bus.request(workloadGetEndpoint, { tenant: 'acme', name: 'guarded' })).authorizer).toBeNull();
  });

  it('keeps tenants apart: --tenant and MANDATE_TENANT', async () => {
    json<Workload>(await cli(['workload', 'create', 'shared-name', '--description', 'globex', '--json'], { NATS_URL: nats.url, MANDATE_TENANT: 'globex' }));
    expect((await mandate('workload', 'get', 'shared-name')).code).toBe(3);
    expect(json<Workload>(await mandate('workload', 'get', 'shared-name', '--tenant', 'globex', '--json')).description).toBe('globex');
  });

  it('says how to start the system when NATS is unreachable, with exit code 6', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    // A key file is read before the bus is reached, so the token command gets one.
    const keyFile = join(await mkdtemp(join(tmpdir(), 'mandate-unreachable-')), 'agent.jwk.json');
    expect((await cli(['workload', 'keygen', '--out', keyFile])).code).toBe(0);
    const commands = [['workload', 'list'], ['workload', 'get', 'any-agent'], ['token', 'for-jwt', '--workload', 'any-agent', '--key', keyFile, '--jwt', 'eyJhbGciOiJub25lIn0.e30.']];
    const runs = await Promise.all(commands.map((args) => cli([...args, '--nats-url', url])));
    for (const [i, run] of runs.entries()) {
      expect(run.code, commands[i]!.join(' ')).toBe(6);
      expect(run.stderr).toContain(`cannot reach NATS at ${url}`);
      expect(run.stderr).toContain('Is `npm start` running?');
      expect(run.stderr).not.toContain('eyJ');
    }
    const withPassword = await cli(['workload', 'list', '--nats-url', `nats://ops:hunter2@127.0.0.1:${await freePort()}`]);
    expect(withPassword.code).toBe(6);
    expect(withPassword.stderr).not.toContain('hunter2');
  });
});
