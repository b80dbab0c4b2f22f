import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { gatewayCreateEndpoint, providerCreateEndpoint, targetAddEndpoint, type GatewayView, type ResponseOf, type TargetView, type toolsForEndpoint } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate gateway commands against the gateway service');

const SAMPLE_TOOLS = ['crm_notes', 'finance_spend', 'documents_list', 'whoami'];

/** An OpenAPI 3 document with one operation; adding it needs no server (the document is given inline). */
const CRM_API = {
  openapi: '3.0.3',
  info: { title: 'CRM', version: '1' },
  servers: [{ url: 'http://127.0.0.1:9/api' }],
  paths: {
    '/accounts/{account}/notes': {
      parameters: [{ name: 'account', in: 'path', required: true, schema: { type: 'string' } }],
      get: { operationId: 'listNotes', summary: "An account's notes", responses: { '200': { description: 'the notes' } } },
    },
  },
};

// Every case runs the CLI many times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate gateway against the gateway service over a real nats-server', { timeout: 180_000 }, () => {
  let h: TestSystem;
  let idp: TestIdp;
  let tools: SampleToolServer;
  /** A second tool server, stopped by a test to make its target unreachable. */
  let spare: SampleToolServer;
  let gatewayKey: JWK;
  let gatewayUrl: string;
  let dir: string;
  let keyFile: string;
  const tokens: string[] = [];
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
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };
  const file = async (name: string, content: unknown) => {
    const path = join(dir, name);
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content), { mode: 0o600 });
    return path;
  };
  const resourceOf = (gateway: string) => `${gatewayUrl}/mcp/acme/${gateway}`;
  const userToken = async (sub: string, gateway: string, scope: string) => {
    const token = await idp.userAccessToken({ sub, audience: resourceOf(gateway), scope });
    tokens.push(token);
    return token;
  };
  const targetsOf = async (gateway: string) => json<{ items: TargetView[] }>(await mandate(['gateway', 'target', 'list', gateway, '--json'])).items;

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-gateway-'));
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: gatewayUrl } });
    [idp, tools, spare] = await Promise.all([startTestIdp(), startSampleToolServer(), startSampleToolServer()]);
    gatewayKey = await h.workload('sales-gateway');
    keyFile = await file('sales-gateway.jwk.json', gatewayKey);
    await h.setAuthorizer('acme', 'sales-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resourceOf('sales'), resourceOf('ops')], allowedScopes: ['crm.read', 'finance.read'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'sales-tools', apiKey: 'sales-tools-api-key-5e0c1d', allowedWorkloads: ['sales-gateway'] });
    // `ops` is set up over the bus: the bad-input case tries to change it, and it must stay as it is.
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'ops', workload: { name: 'sales-gateway', privateJwk: gatewayKey as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'ops', target: { name: 'sales-tools', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'api-key', provider: 'sales-tools' } } });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'ops', target: { name: 'spare', source: { kind: 'mcp', url: spare.url }, timeoutMs: 1_000 } });
  }, 120_000);

  afterAll(async () => {
    await h?.stop();
    await Promise.all([idp?.stop(), tools?.stop(), spare?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates, reads and lists a gateway, adds, lists and syncs targets, explains what a principal sees, removes a target and deletes the gateway', async () => {
    const created = json<GatewayView>(
      await mandate([
        'gateway', 'create', 'sales',
        '--workload', 'sales-gateway', '--key', keyFile,
        '--authorization-server', idp.issuer,
        '--scope', 'crm.read', '--scope', 'finance.read',
        '--interceptor', 'response:mandate.interceptor.sales-redact:500:fail-open',
        '--description', 'Sales tools for agents',
        '--actor', 'ops@acme', '--json',
      ]),
    );
    expect(created).toMatchObject({
      tenant: 'acme',
      name: 'sales',
      description: 'Sales tools for agents',
      workload: 'sales-gateway',
      resourceUrl: resourceOf('sales'),
      authorizationServers: [idp.issuer],
      scopesSupported: ['crm.read', 'finance.read'],
      interceptors: [{ phase: 'response', subject: 'mandate.interceptor.sales-redact', timeoutMs: 500, failOpen: true }],
      targets: [],
    });
    expect(JSON.stringify(created)).not.toContain('"d"');
    await expect.poll(() => h.audit.find((r) => r.service === 'gateway' && r.action === 'gateway-create' && r.target?.resource === 'sales')?.actor).toEqual({ admin: 'ops@acme' });

    const shown = ok(await mandate(['gateway', 'get', 'sales']));
    expect(shown.stdout).toMatch(/^name\s+sales$/m);
    expect(shown.stdout).toMatch(/^description\s+Sales tools for agents$/m);
    expect(shown.stdout).toMatch(/^workload\s+sales-gateway$/m);
    expect(shown.stdout).toContain(`resource URL           ${resourceOf('sales')}`);
    expect(shown.stdout).toMatch(/^scopes supported\s+crm\.read\n\s+finance\.read$/m);
    expect(shown.stdout).toMatch(/^interceptors\s+response mandate\.interceptor\.sales-redact \(500 ms, fails open\)$/m);
    expect(shown.stdout).toMatch(/^targets\s+none$/m);
    expect(json<GatewayView>(await mandate(['gateway', 'get', 'sales', '--json']))).toEqual(created);

    // A target from options, with a binding file; one from a whole spec in --file; one from an OpenAPI document.
    const bindings = await file('bindings.json', [
      { tool: 'finance_spend', requiredScopes: ['finance.read'], description: 'Spend this year, from finance' },
      { tool: 'whoami', hidden: true },
    ]);
    const added = json<TargetView>(
      await mandate([
        'gateway', 'target', 'add', 'sales', 'sales-tools',
        '--mcp-url', tools.url, '--credential', 'api-key:sales-tools', '--default-scope', 'crm.read',
        '--binding-file', bindings, '--timeout-ms', '2000', '--actor', 'ops@acme', '--json',
      ]),
    );
    expect(added).toMatchObject({
      name: 'sales-tools',
      source: { kind: 'mcp', url: tools.url },
      credential: { kind: 'api-key', provider: 'sales-tools' },
      defaultScopes: ['crm.read'],
      bindings: [
        { tool: 'finance_spend', requiredScopes: ['finance.read'], description: 'Spend this year, from finance', hidden: false },
        { tool: 'whoami', hidden: true },
      ],
      timeoutMs: 2_000,
    });
    expect(added.tools.map((t) => t.name)).toEqual(SAMPLE_TOOLS);

    const spec = await file('notes-target.json', { name: 'notes', source: { kind: 'mcp', url: tools.url }, defaultScopes: ['finance.read'], timeoutMs: 1_500 });
    const fromFile = ok(await mandate(['gateway', 'target', 'add', 'sales', '--file', spec]));
    expect(fromFile.stdout).toMatch(/^target\s+notes$/m);
    expect(fromFile.stdout).toContain(`mcp ${tools.url}`);
    expect(fromFile.stdout).toMatch(/^credential\s+none$/m);
    expect(fromFile.stdout).toMatch(/^tool names\s+prefixed: notes___<tool>$/m);
    expect(fromFile.stdout).toMatch(/^tools\s+crm_notes\n\s+finance_spend\n\s+documents_list\n\s+whoami$/m);
    expect(fromFile.stdout).toMatch(/^state\s+reachable$/m);

    const openapi = await file('crm-openapi.json', CRM_API);
    const api = json<TargetView>(await mandate(['gateway', 'target', 'add', 'sales', 'crm-api', '--openapi-file', openapi, '--openapi-base-url', 'http://127.0.0.1:9/v2', '--json']));
    expect(api.source).toMatchObject({ kind: 'openapi', baseUrl: 'http://127.0.0.1:9/v2' });
    expect(api.tools.map((t) => t.name)).toEqual(['listNotes']);

    const table = ok(await mandate(['gateway', 'target', 'list', 'sales']));
    expect(table.stdout.split('\n')[0]).toMatch(/^name\s+source\s+credential\s+tools\s+state\s+synced\s+revision$/);
    expect(table.stdout).toMatch(new RegExp(`^sales-tools\\s+mcp ${tools.url}\\s+api-key:sales-tools\\s+4\\s+reachable\\s+`, 'm'));
    expect(table.stdout).toMatch(/^notes\s+mcp \S+\s+none\s+4\s+reachable\s+/m);
    expect(table.stdout).toMatch(/^crm-api\s+openapi document given inline, calls http:\/\/127\.0\.0\.1:9\/v2\s+none\s+1\s+reachable\s+/m);
    const withTools = ok(await mandate(['gateway', 'target', 'list', 'sales', '--tools']));
    expect(withTools.stdout).toMatch(/^tool\s+scopes\s+shown\s+description$/m);
    expect(withTools.stdout).toMatch(/^sales-tools___crm_notes\s+crm\.read\s+yes\s+An account's CRM notes$/m);
    expect(withTools.stdout).toMatch(/^sales-tools___finance_spend\s+finance\.read\s+yes\s+Spend this year, from finance$/m);
    expect(withTools.stdout).toMatch(/^sales-tools___whoami\s+crm\.read\s+no: hidden by binding\s+/m);
    expect(withTools.stdout).toMatch(/^crm-api___listNotes\s+-\s+yes\s+An account's notes$/m);
    const listed = await targetsOf('sales');
    expect(listed.map((t) => t.name).sort()).toEqual(['crm-api', 'notes', 'sales-tools']);
    expect(json<GatewayView>(await mandate(['gateway', 'get', 'sales', '--json'])).targets).toEqual(['crm-api', 'notes', 'sales-tools']);

    const list = json<{ items: GatewayView[] }>(await mandate(['gateway', 'list', '--json']));
    expect(list.items.map((g) => g.name)).toEqual(['ops', 'sales']);
    expect(list).not.toHaveProperty('nextCursor');
    const gateways = ok(await mandate(['gateway', 'list']));
    expect(gateways.stdout.split('\n')[0]).toMatch(/^name\s+workload\s+resource URL\s+targets\s+interceptors\s+revision\s+created$/);
    expect(gateways.stdout).toMatch(new RegExp(`^sales\\s+sales-gateway\\s+${resourceOf('sales')}\\s+crm-api,notes,sales-tools\\s+1\\s+\\d+\\s+`, 'm'));
    const paged = ok(await mandate(['gateway', 'list', '--limit', '1']));
    expect(paged.stdout).toMatch(/^ops\s+/m);
    expect(paged.stderr).toMatch(/more: mandate gateway list --cursor \S+ {2}\(or --all\)/);

    // What Bob (crm.read) would see, from a token file, an environment variable and stdin.
    const bob = await userToken('bob', 'sales', 'crm.read');
    const tokenFile = await file('bob.jwt', `${bob}\n`);
    const seen = ok(await mandate(['gateway', 'tools', 'sales', '--token-file', tokenFile]));
    expect(seen.stdout).toMatch(/^principal\s+bob$/m);
    expect(seen.stdout).toMatch(new RegExp(`^issuer\\s+${idp.issuer}$`, 'm'));
    expect(seen.stdout).toMatch(/^scopes\s+crm\.read$/m);
    expect(seen.stdout).toMatch(/^sales-tools___crm_notes\s+sales-tools\s+crm_notes$/m);
    expect(seen.stdout).toMatch(/^crm-api___listNotes\s+crm-api\s+listNotes$/m);
    expect(seen.stdout).toMatch(/^sales-tools___finance_spend\s+missing_scopes\s+finance\.read$/m);
    expect(seen.stdout).toMatch(/^missing_scopes: the token lacks scopes the tool needs$/m);
    expect(seen.stdout).toMatch(/^sales-tools___whoami\s+hidden_by_binding\s+-\s+/m);
    expect(seen.stdout).toMatch(/^notes___crm_notes\s+missing_scopes\s+finance\.read\s+/m);
    const explained = json<ResponseOf<typeof toolsForEndpoint>>(await mandate(['gateway', 'tools', 'sales', '--token-env', 'GATEWAY_TEST_TOKEN', '--json'], { env: { GATEWAY_TEST_TOKEN: bob } }));
    expect(explained.principal).toMatchObject({ sub: 'bob', iss: idp.issuer, scopes: ['crm.read'] });
    expect(explained.visible.map((t) => t.name).sort()).toEqual(['crm-api___listNotes', 'sales-tools___crm_notes', 'sales-tools___documents_list']);
    expect(explained.hidden).toEqual(
      expect.arrayContaining([
        { name: 'sales-tools___finance_spend', target: 'sales-tools', tool: 'finance_spend', reason: 'missing_scopes', missingScopes: ['finance.read'] },
        { name: 'sales-tools___whoami', target: 'sales-tools', tool: 'whoami', reason: 'hidden_by_binding' },
      ]),
    );
    const sarah = await userToken('sarah', 'sales', 'crm.read finance.read');
    const fromStdin = json<ResponseOf<typeof toolsForEndpoint>>(await mandate(['gateway', 'tools', 'sales', '--token', '-', '--json'], { stdin: `Bearer ${sarah}` }));
    expect(fromStdin.principal.sub).toBe('sarah');
    expect(fromStdin.hidden).toEqual([{ name: 'sales-tools___whoami', target: 'sales-tools', tool: 'whoami', reason: 'hidden_by_binding' }]);

    const synced = json<TargetView>(await mandate(['gateway', 'target', 'sync', 'sales', 'sales-tools', '--json']));
    expect(synced.tools.map((t) => t.name)).toEqual(SAMPLE_TOOLS);
    expect(synced.bindings).toEqual(added.bindings);
    expect(Date.parse(synced.syncedAt)).toBeGreaterThanOrEqual(Date.parse(added.syncedAt));
    expect(synced.revision).toBeGreaterThan(added.revision);

    const removed = ok(await mandate(['gateway', 'target', 'remove', 'sales', 'notes', '--actor', 'ops@acme']));
    expect(removed.stderr).toContain('removed target notes from gateway sales');
    const again = await mandate(['gateway', 'target', 'remove', 'sales', 'notes', '--json']);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('not_found: gateway sales has no target notes');
    expect((await targetsOf('sales')).map((t) => t.name)).toEqual(['crm-api', 'sales-tools']);

    const deleted = ok(await mandate(['gateway', 'delete', 'sales', '--actor', 'ops@acme']));
    expect(deleted.stderr).toContain('deleted gateway sales and its targets from tenant acme');
    const gones = await Promise.all([['get', 'sales'], ['delete', 'sales'], ['target', 'list', 'sales'], ['target', 'sync', 'sales', 'sales-tools']].map((args) => mandate(['gateway', ...args])));
    for (const gone of gones) {
      expect(gone.code, gone.stderr).toBe(3);
      expect(gone.stderr).toContain('not_found: no gateway sales');
      expect(gone.stdout).toBe('');
    }
    expect(json<{ items: GatewayView[] }>(await mandate(['gateway', 'list', '--json'])).items.map((g) => g.name)).toEqual(['ops']);
    const elsewhere = ok(await mandate(['gateway', 'list', '--tenant', 'globex']));
    expect(elsewhere.stdout).toBe('no gateways in tenant globex\n');
  });

  it('refuses bad input with a clear error and a non-zero exit, and changes nothing', async () => {
    const before = await targetsOf('ops');
    const gatewaysBefore = json<{ items: GatewayView[] }>(await mandate(['gateway', 'list', '--json']));
    const unreachable = `http://127.0.0.1:${await freePort()}/mcp`;
    const add = (...args: string[]) => mandate(['gateway', 'target', 'add', 'ops', ...args]);
    const cases: [args: Promise<CliRun>, code: number, ...messages: string[]][] = [
      // Usage errors, before anything is sent.
      [add('x', '--mcp-url', tools.url, '--credential', 'ftp:thing'), 2, "option '--credential <kind[:provider]>' argument 'ftp:thing' is invalid", 'unknown credential kind; must be none, api-key:PROVIDER, oauth2-m2m:PROVIDER or oauth2-user:PROVIDER'],
      [add('x', '--mcp-url', tools.url, '--credential', 'api-key'), 2, 'api-key needs the vault provider: api-key:PROVIDER'],
      [add('x', '--mcp-url', tools.url, '--credential', 'api-key:sales-tools', '--credential-scope', 'crm.read'), 2, '--credential-scope is not for --credential api-key'],
      [add('x', '--mcp-url', tools.url, '--credential-header', 'X-Key'), 2, '--credential-header goes with --credential'],
      [add('x'), 2, "give the target's source: --mcp-url, --openapi-url, --openapi-file (or the whole target with --file)"],
      [add('x', '--mcp-url', tools.url, '--openapi-url', 'https://api.example/openapi.json'), 2, 'give one source, not --mcp-url and --openapi-url'],
      [add('x', '--mcp-url', tools.url, '--openapi-base-url', 'https://api.example'), 2, '--openapi-base-url goes with --openapi-url or --openapi-file'],
      [add('x', '--file', await file('x.json', { name: 'x', source: { kind: 'mcp', url: tools.url } }), '--mcp-url', tools.url), 2, '--file holds the whole target; --mcp-url cannot be given with it'],
      [add('x', '--file', await file('x3.json', { name: 'x', source: { kind: 'mcp', url: tools.url } }), '--tool-names', 'as-given'), 2, '--file holds the whole target; --tool-names cannot be given with it'],
      [add('y', '--file', await file('x2.json', { name: 'x', source: { kind: 'mcp', url: tools.url } })), 2, 'the target is named y on the command line but differently in --file'],
      [add('x', '--openapi-file', await file('broken.yaml', 'openapi: 3.0.3\ninfo: {title: x}\n')), 2, 'is not JSON (a YAML document: serve it and give --openapi-url, or convert it to JSON). Nothing was sent.'],
      [add('x', '--mcp-url', tools.url, '--binding-file', await file('not-array.json', { tool: 'whoami' })), 2, 'must hold a JSON array of binding objects'],
      [add('x', '--mcp-url', tools.url, '--tool-names', 'plain'), 2, "option '--tool-names <scheme>' argument 'plain' is invalid. Allowed choices are prefixed, as-given."],
      [mandate(['gateway', 'create', 'odd', '--workload', 'sales-gateway', '--key', keyFile, '--authorization-server', idp.issuer, '--interceptor', 'sideways:acme.x']), 2, 'the phase must be request or response'],
      // Refused by the contract (the bus client checks it before sending).
      [add('--file', await file('ftp.json', { name: 'ftp', source: { kind: 'ftp', url: tools.url } })), 2, 'invalid_request: invalid request', '  - target.source.kind'],
      [add('Bad_Name', '--mcp-url', tools.url), 2, 'invalid_request', '  - target.name: must be 1-63 lower-case letters'],
      [mandate(['gateway', 'create', 'odd', '--workload', 'sales-gateway', '--key', keyFile, '--authorization-server', idp.issuer, '--interceptor', 'request:acme.audit']), 2, '  - interceptors.0.subject: a NATS subject under mandate.interceptor.'],
      // Refused by the gateway.
      [add('ghost', '--mcp-url', tools.url, '--binding-file', await file('ghost.json', [{ tool: 'no_such_tool' }])), 2, 'invalid_request: target ghost has no tool no_such_tool', '  - target.bindings.0.tool: no such tool at the target'],
      [add('twice', '--mcp-url', tools.url, '--binding-file', await file('twice.json', [{ tool: 'whoami' }, { tool: 'whoami' }])), 2, 'invalid_request: tool whoami is bound twice'],
      [add('broken', '--openapi-file', await file('broken.json', { openapi: '3.0.3', info: { title: 'x' }, paths: { '/a': { get: { responses: 'nope' } } } })), 2, 'invalid_request'],
      [add('down', '--mcp-url', unreachable, '--timeout-ms', '1000'), 6, 'unavailable: target down'],
      [add('sales-tools', '--mcp-url', tools.url), 4, 'conflict: gateway ops already has a target sales-tools'],
      [mandate(['gateway', 'target', 'add', 'nope', 'x', '--mcp-url', tools.url]), 3, 'not_found: no gateway nope'],
      [mandate(['gateway', 'create', 'ops', '--workload', 'sales-gateway', '--key', keyFile, '--authorization-server', idp.issuer]), 4, 'conflict: gateway ops already exists'],
      [mandate(['gateway', 'create', 'other', '--workload', 'sales-gateway', '--key', await file('wrong-kid.jwk.json', { ...gatewayKey, kid: 'unknown' }), '--authorization-server', idp.issuer]), 2, 'invalid_request'],
    ];
    const results = await Promise.all(cases.map(([run]) => run));
    for (const [i, run] of results.entries()) {
      const [, code, ...messages] = cases[i]!;
      expect(run.code, `case ${i}: ${run.stderr}`).toBe(code);
      for (const message of messages) expect(run.stderr, `case ${i}`).toContain(message);
      expect(run.stdout, `case ${i}`).toBe('');
    }
    expect(await targetsOf('ops')).toEqual(before);
    expect(json<{ items: GatewayView[] }>(await mandate(['gateway', 'list', '--json']))).toEqual(gatewaysBefore);
    expect(h.audit.filter((r) => r.service === 'gateway' && r.target?.resource?.startsWith('ops/') && r.action === 'target-add')).toHaveLength(2);
  });

  it('refuses a token on the command line, one for another gateway, and a target it cannot reach at sync', async () => {
    const token = await userToken('bob', 'ops', 'crm.read');
    const onArgv = await mandate(['gateway', 'tools', 'ops', '--token', token]);
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toContain('--token takes only "-" (read the token from stdin)');
    const none = await mandate(['gateway', 'tools', 'ops']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("give the principal's token: --token-file FILE, --token-env VAR or --token - (stdin)");
    const otherAudience = await mandate(['gateway', 'tools', 'ops', '--token-file', await file('sales.jwt', await userToken('bob', 'sales', 'crm.read'))]);
    expect(otherAudience.code).toBe(5);
    expect(otherAudience.stderr).toContain('unauthenticated');
    const visible = json<ResponseOf<typeof toolsForEndpoint>>(await mandate(['gateway', 'tools', 'ops', '--token-env', 'T', '--json'], { env: { T: token } }));
    expect(visible.visible.map((t) => t.target)).toContain('spare');

    // The target is down: the sync fails (exit 6); its tools are kept but hidden until a sync succeeds.
    const targets = await targetsOf('ops');
    const before = targets.find((t) => t.name === 'spare')!;
    const salesTools = targets.find((t) => t.name === 'sales-tools');
    await spare.stop();
    const sync = await mandate(['gateway', 'target', 'sync', 'ops', 'spare']);
    expect(sync.code).toBe(6);
    expect(sync.stderr).toContain('unavailable: target spare');
    expect(sync.stdout).toBe('');
    const after = (await targetsOf('ops')).find((t) => t.name === 'spare')!;
    expect(after.tools).toEqual(before.tools);
    expect(after.unreachableSince).toBeDefined();
    const list = ok(await mandate(['gateway', 'target', 'list', 'ops']));
    expect(list.stdout).toMatch(/^spare\s+mcp \S+\s+none\s+4\s+unreachable since \S+\s+/m);
    const hidden = json<ResponseOf<typeof toolsForEndpoint>>(await mandate(['gateway', 'tools', 'ops', '--token-env', 'T', '--json'], { env: { T: token } }));
    expect(hidden.visible.map((t) => t.target)).not.toContain('spare');
    expect(hidden.hidden.filter((t) => t.target === 'spare').map((t) => t.reason)).toEqual(['target_unreachable', 'target_unreachable', 'target_unreachable', 'target_unreachable']);
    expect(after.revision).toBeGreaterThan(before.revision);
    expect((await targetsOf('ops')).find((t) => t.name === 'sales-tools')).toEqual(salesTools);
  });

  it("names a target's tools as it gives them with --tool-names as-given, and refuses another target whose names would clash", async () => {
    const added = ok(await mandate(['gateway', 'target', 'add', 'ops', 'plain', '--mcp-url', tools.url, '--tool-names', 'as-given']));
    expect(added.stdout).toMatch(/^tool names\s+as given: the target's own names$/m);
    const listed = ok(await mandate(['gateway', 'target', 'list', 'ops', '--tools']));
    expect(listed.stdout).toMatch(/^crm_notes\s+-\s+yes\s+An account's CRM notes$/m);
    const before = await targetsOf('ops');
    const clash = await mandate(['gateway', 'target', 'add', 'ops', 'plain-too', '--mcp-url', tools.url, '--tool-names', 'as-given']);
    expect(clash.code).toBe(4);
    expect(clash.stderr).toContain('conflict: target plain-too: 4 of its tools cannot be named at the gateway: crm_notes (target plain already has a tool of this name at the gateway)');
    expect(clash.stdout).toBe('');
    expect(await targetsOf('ops')).toEqual(before);
    ok(await mandate(['gateway', 'target', 'remove', 'ops', 'plain']));
  });

  it('never printed the private key or a token, in any command above', () => {
    expect(runs.length).toBeGreaterThan(40);
    const privateD = gatewayKey.d!;
    expect(privateD.length).toBeGreaterThan(20);
    expect(tokens.length).toBeGreaterThan(3);
    for (const run of runs) {
      for (const secret of [privateD, ...tokens]) {
        expect(run.stdout).not.toContain(secret);
        expect(run.stderr).not.toContain(secret);
      }
    }
  });
});
