import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import { grantRecordEndpoint, providerCreateEndpoint, type GrantView } from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { consentEnvSchema } from '../apps/consent/src/config.js';
import { consentService } from '../apps/consent/src/consent.module.js';
import { vaultEnvSchema } from '../apps/vault/src/config.js';
import { vaultService } from '../apps/vault/src/vault.module.js';
import { runCli, type CliRun } from './cli-process.js';
import { assertBuilt, cliEntry } from './processes.js';

const missing = natsServerMissing('mandate grant commands against the consent service');
const IDP = 'https://login.acme.example';

describe.skipIf(missing)('mandate grant against the consent service over a real nats-server', { timeout: 90_000 }, () => {
  let nats: NatsServerHandle;
  let vault: RunningService;
  let consent: RunningService;
  let nc: NatsConnection;
  let dir: string;
  const mandate = (args: string[]): Promise<CliRun> => runCli(args, { env: { NATS_URL: nats.url, MANDATE_TENANT: 'acme' } });

  beforeAll(async () => {
    assertBuilt(cliEntry);
    nats = await startNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-grant-'));
    const silent = (name: string) => ({ logger: createLogger(name, { level: 'silent' }) });
    vault = await runService(vaultService, vaultEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: join(dir, 'data') }), silent('vault'));
    consent = await runService(consentService, consentEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: join(dir, 'data'), CONSENT_HTTP_PORT: '0' }), silent('consent'));
    nc = await connectToBus({ servers: nats.url, name: 'cli-grant-test' });
    const bus = new BusClient(nc, { defaultTimeoutMs: 5_000 });
    for (const name of ['crm', 'finance']) {
      await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name, vendor: 'custom', metadata: { tokenEndpoint: `https://${name}.example/token` }, clientId: 'c', clientSecret: 's', allowedWorkloads: ['sales-agent'] });
    }
    const sarah = { iss: IDP, sub: 'sarah' };
    await bus.request(grantRecordEndpoint, { tenant: 'acme', workload: 'sales-agent', provider: 'crm', user: sarah, scopes: ['crm.read'], expiresAt: new Date(Date.now() + 7 * 86_400_000).toISOString() });
    await bus.request(grantRecordEndpoint, { tenant: 'acme', workload: 'sales-agent', provider: 'finance', user: sarah, scopes: ['finance.read'] });
    await bus.request(grantRecordEndpoint, { tenant: 'acme', workload: 'support-agent', provider: 'crm', user: { iss: IDP, sub: 'tom' }, scopes: ['crm.read'] });
  });

  afterAll(async () => {
    await nc?.close();
    await consent?.stop();
    await vault?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("lists the tenant's grants, a person's and an agent's", async () => {
    const all = await mandate(['grant', 'list']);
    expect(all, all.stderr).toMatchObject({ code: 0 });
    expect(all.stdout).toMatch(/WORKLOAD\s+PROVIDER\s+USER\s+SCOPES\s+SINCE\s+UNTIL/);
    expect(all.stdout.trim().split('\n')).toHaveLength(4);
    expect(all.stdout).toContain('until revoked');

    const sarahs = await mandate(['grant', 'list', '--user-sub', 'sarah', '--user-iss', IDP, '--json']);
    const items = JSON.parse(sarahs.stdout) as GrantView[];
    expect(items.map((g) => g.provider).sort()).toEqual(['crm', 'finance']);
    expect(items.find((g) => g.provider === 'crm')!.expiresAt).toBeTruthy();

    const support = JSON.parse((await mandate(['grant', 'list', '--workload', 'support-agent', '--json'])).stdout) as GrantView[];
    expect(support.map((g) => g.user.sub)).toEqual(['tom']);
  });

  it('checks which scopes a grant covers', async () => {
    const check = await mandate(['grant', 'check', '--workload', 'sales-agent', '--provider', 'crm', '--user-sub', 'sarah', '--user-iss', IDP, '--scope', 'crm.read', '--scope', 'crm.write']);
    expect(check, check.stderr).toMatchObject({ code: 0 });
    expect(check.stdout).toMatch(/granted\s+no/);
    expect(check.stdout).toMatch(/missing\s+crm\.write/);
  });

  it("revokes one provider's grant, then the rest; bad input is a usage error that changes nothing", async () => {
    const bad = await mandate(['grant', 'revoke', '--workload', 'not a workload!', '--user-sub', 'sarah', '--user-iss', IDP]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('workload');

    const one = await mandate(['grant', 'revoke', '--workload', 'sales-agent', '--user-sub', 'sarah', '--user-iss', IDP, '--provider', 'crm']);
    expect(one, one.stderr).toMatchObject({ code: 0 });
    expect(one.stderr).toContain('revoked 1 grant of sarah to sales-agent');
    const left = JSON.parse((await mandate(['grant', 'list', '--user-sub', 'sarah', '--user-iss', IDP, '--json'])).stdout) as GrantView[];
    expect(left.map((g) => g.provider)).toEqual(['finance']);

    const rest = await mandate(['grant', 'revoke', '--workload', 'sales-agent', '--user-sub', 'sarah', '--user-iss', IDP, '--json']);
    expect(JSON.parse(rest.stdout)).toEqual({ revoked: 1, tokensRevoked: ['finance'] });
    expect((await mandate(['grant', 'list', '--user-sub', 'sarah', '--user-iss', IDP])).stderr).toContain('no live grants');
  });
});
