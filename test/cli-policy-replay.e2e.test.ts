import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { decisionSealId, decisionSubject, gatewayCreateEndpoint, policyCreateEndpoint, targetAddEndpoint, tenantId, type DecisionEntry, type ResponseOf, type policyReplayEndpoint } from '@mandate/contracts';
import { EnvelopeCipher, loadDecisionLogKeys } from '@mandate/crypto';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { runCli, type CliRun } from './cli-process.js';
import { assertBuilt, cliEntry } from './processes.js';

const missing = natsServerMissing('mandate policy replay and explain against the policy service');

const UNDER_100 = `@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };
`;
const UNDER_200 = UNDER_100.replaceAll('100', '200');

/*
 * The commands over a decision log written as the gateway writes it (sealed with the decision
 * log's key ring of the system's data dir): the calls themselves are made through the gateway in
 * apps/policy/src/replay.e2e.test.ts; here what is checked is what the commands print and exit.
 */
describe.skipIf(missing)('mandate policy replay and explain', { timeout: 120_000 }, () => {
  let h: TestSystem;
  let finance: Awaited<ReturnType<typeof startExpenseToolServer>>;
  let dir: string;
  const ids: Record<string, string> = {};
  const mandate = (args: string[]) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-replay-'));
    const port = await freePort();
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}` } });
    finance = await startExpenseToolServer();
    const key = await h.workload('finance-gateway');
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: ['https://idp.example'] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    const created = await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_100 });
    const cipher = new EnvelopeCipher((await loadDecisionLogKeys({ mode: 'embedded', dataDir: h.env['MANDATE_DATA_DIR']! })).ring);
    const js = jetstream(h.nc);
    for (const [name, sub, groups, amount, decision] of [['sarah 50', 'sarah', ['finance'], 50, 'allow'], ['sarah 150', 'sarah', ['finance'], 150, 'deny'], ['bob 20', 'bob', ['sales'], 20, 'deny']] as const) {
      const id = randomUUID();
      ids[name] = id;
      const now = Date.now() - 60_000;
      const entry: DecisionEntry = {
        id,
        tenant: tenantId('acme'),
        gateway: 'finance',
        recordedAt: new Date(now).toISOString(),
        tool: 'finance___approve_expense',
        principal: { iss: 'https://idp.example', sub },
        policySet: 'expenses',
        policyVersion: created.active.hash,
        mode: 'enforce',
        decided: { decision, determining: decision === 'allow' ? ['finance-under-100'] : [] },
        sealed: cipher.sealToString(JSON.stringify({ claims: { groups: [...groups] }, scopes: ['finance.write'], client: 'expense-agent', arguments: { amount }, now }), decisionSealId('acme', 'finance', id)),
      };
      await js.publish(decisionSubject('acme', 'finance', id), JSON.stringify(entry), { msgID: id });
    }
  });

  afterAll(async () => {
    await h?.stop();
    await finance?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints the decisions a candidate would change, grouped by tool and principal, and exits 0', async () => {
    const candidate = join(dir, 'under-200.cedar');
    await writeFile(candidate, UNDER_200);
    const printed = ok(await mandate(['policy', 'replay', '--gateway', 'finance', '--since', '1h', '--candidate', candidate])).stdout;
    expect(printed).toContain('replayed 3 recorded calls of finance');
    expect(printed).toContain('unchanged 2, allowed → denied 0, denied → allowed 1');
    expect(printed).toMatch(/finance___approve_expense\s+sarah\s+https:\/\/idp\.example\s+0\s+1\s+/);
    expect(printed).toContain(ids['sarah 150']);
    const answer = JSON.parse(ok(await mandate(['policy', 'replay', '--gateway', 'finance', '--candidate', candidate, '--json'])).stdout) as ResponseOf<typeof policyReplayEndpoint>;
    expect(answer.groups).toEqual([{ tool: 'finance___approve_expense', principal: { iss: 'https://idp.example', sub: 'sarah' }, allowedToDenied: 0, deniedToAllowed: 1, samples: [ids['sarah 150']] }]);
    expect(ok(await mandate(['policy', 'replay', '--gateway', 'finance', '--since', '1h', '--candidate', join(dir, 'under-200.cedar'), '--actor', 'security@acme'])).stdout).toContain('denied → allowed 1');
    await expect.poll(() => h.audit.some((r) => r.action === 'policy-replay' && r.actor.admin === 'security@acme')).toBe(true);
  });

  it('explains a recorded decision: the request, the decision and the policy text that made it', async () => {
    const printed = ok(await mandate(['policy', 'explain', ids['sarah 50']!])).stdout;
    expect(printed).toMatch(/decision\s+allow/);
    expect(printed).toContain('"amount": 50');
    expect(printed).toContain('finance-under-100:');
    expect(printed).toContain('context.input.amount.lessThan(decimal("100.0"))');
    expect(printed).toMatch(/agent\s+expense-agent/);
    expect(printed).toContain('expenses version 1');
    const denied = JSON.parse(ok(await mandate(['policy', 'explain', ids['bob 20']!, '--json'])).stdout) as { decision: string; arguments: unknown; determining: unknown[] };
    expect(denied).toMatchObject({ decision: 'deny', arguments: { amount: 20 }, determining: [] });
  });

  it('exits with the error code on bad input: an unknown id, a bad window, an invalid candidate, an unknown gateway', async () => {
    expect((await mandate(['policy', 'explain', randomUUID()])).code).toBe(3);
    expect((await mandate(['policy', 'explain', 'not-an-id'])).code).toBe(2);
    const bad = join(dir, 'bad.cedar');
    await writeFile(bad, 'permit (principal, action, resource) when {');
    const invalid = await mandate(['policy', 'replay', '--gateway', 'finance', '--candidate', bad]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/line 1, column \d+/);
    expect((await mandate(['policy', 'replay', '--gateway', 'finance', '--since', 'yesterday', '--candidate', bad])).code).toBe(2);
    await writeFile(join(dir, 'under-200.cedar'), UNDER_200);
    expect((await mandate(['policy', 'replay', '--gateway', 'nowhere', '--candidate', join(dir, 'under-200.cedar')])).code).toBe(3);
  });
});
