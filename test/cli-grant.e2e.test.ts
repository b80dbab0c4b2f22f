import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { providerCreateEndpoint, type GrantView } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from '@mandate/vault/testing';
import { runCli, type CliRun } from './cli-process.js';
import { assertBuilt, cliEntry } from './processes.js';

const missing = natsServerMissing('mandate grant commands against the vault');
const IDP = 'https://login.acme.example';

describe.skipIf(missing)('mandate grant against the vault over a real nats-server', { timeout: 90_000 }, () => {
  let h: TestSystem;
  const mandate = (args: string[]): Promise<CliRun> => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });

  beforeAll(async () => {
    assertBuilt(cliEntry);
    h = await startSystem({ services: ['vault'] });
    const { bus } = h;
    const seed = await VaultSeed.open(h);
    for (const name of ['crm', 'finance']) {
      await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name, vendor: 'custom', metadata: { tokenEndpoint: `https://${name}.example/token` }, clientId: 'c', clientSecret: 's', allowedWorkloads: ['sales-agent'] });
    }
    const sarah = { iss: IDP, sub: 'sarah' };
    await seed.grant('acme', { workload: 'sales-agent', provider: 'crm', user: sarah, scopes: ['crm.read'], expiresAt: new Date(Date.now() + 7 * 86_400_000).toISOString() });
    await seed.grant('acme', { workload: 'sales-agent', provider: 'finance', user: sarah, scopes: ['finance.read'] });
    await seed.grant('acme', { workload: 'support-agent', provider: 'crm', user: { iss: IDP, sub: 'tom' }, scopes: ['crm.read'] });
  });

  afterAll(async () => {
    await h?.stop();
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

  it('checks which scopes a grant covers, exiting 1 when they are not all granted', async () => {
    const check = await mandate(['grant', 'check', '--workload', 'sales-agent', '--provider', 'crm', '--user-sub', 'sarah', '--user-iss', IDP, '--scope', 'crm.read', '--scope', 'crm.write']);
    expect(check, check.stderr).toMatchObject({ code: 1 });
    expect(check.stdout).toMatch(/granted\s+no/);
    expect(check.stdout).toMatch(/missing\s+crm\.write/);
    const json = await mandate(['grant', 'check', '--workload', 'sales-agent', '--provider', 'crm', '--user-sub', 'sarah', '--user-iss', IDP, '--scope', 'crm.write', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ granted: false, missing: ['crm.write'] });

    const granted = await mandate(['grant', 'check', '--workload', 'sales-agent', '--provider', 'crm', '--user-sub', 'sarah', '--user-iss', IDP, '--scope', 'crm.read']);
    expect(granted, granted.stderr).toMatchObject({ code: 0 });
    expect(granted.stdout).toMatch(/granted\s+yes/);
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
