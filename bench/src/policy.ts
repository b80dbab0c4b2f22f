import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { authorizerSetEndpoint, gatewayCreateEndpoint, policyAttachEndpoint, policyCreateEndpoint, providerCreateEndpoint, targetAddEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { fetchWithRequestSignals } from '@mandate/http';
import { freePort } from '@mandate/testing';
import { cedarSchemaFor, parsePolicySet, ToolPolicy, type ModelTool, type PolicyPrincipal } from '@mandate/tool-policy';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { gatewayService } from '@mandate/gateway/module';
import { policyService } from '@mandate/policy/module';
import { vaultService } from '@mandate/vault/module';
import { addedMedianUs, measureInRounds, percentile, type RequestFn } from './measure.js';
import { startBenchUpstream, TOOLS_PER_ENDPOINT } from './mcp-upstream.js';
import { startServices } from './services.js';
import { percent, printTable } from './table.js';

/** The load's MCP clients, as docs/gateway.md advises agents: each request with its own abort signal (the SDK shares its transport's, and Node's fetch leaves a listener on it per request). */
const requestFetch = fetchWithRequestSignals();

/** Issue 17's targets. */
export const POLICY_EVALUATION_P50_TARGET_US = 200;
export const POLICY_ADDED_CALL_MEDIAN_TARGET_US = 300;
export const POLICY_SET_SIZES = [10, 100, 1_000] as const;
/** The set the gateway rows enforce. */
const GATEWAY_POLICIES = 100;
const TARGETS = 5;
const CONCURRENCY = 64;

const TENANT = 'bench-policy';
const SCOPE = 'bench.tools';
const UPSTREAM_SCOPE = 'upstream.call';
const MESSAGE = 'hello from the benchmark';
export const POLICY_CALL_ROW = `tools/call through the gateway, ${GATEWAY_POLICIES}-policy set enforced`;
const PLAIN_CALL_ROW = 'tools/call through the gateway, no policy set';
const POLICY_LIST_ROW = `tools/list through the gateway, ${GATEWAY_POLICIES}-policy set enforced (of ${TARGETS * TOOLS_PER_ENDPOINT} tools, those policy could permit; answers cached)`;
const PLAIN_LIST_ROW = `tools/list through the gateway, no policy set (${TARGETS * TOOLS_PER_ENDPOINT} tools)`;

export interface PolicyEvaluationRow {
  name: string;
  policies: number;
  p50Us: number;
  p99Us: number;
}

export interface PolicyGatewayRow {
  name: string;
  medianUs: number;
  p99Us: number;
  requestsPerSecond: number;
  /** Median over the same request through the gateway without a policy set, same run. */
  addedMedianUs?: number;
  throughputRatio?: number;
}

export interface PolicyReport {
  evaluation: PolicyEvaluationRow[];
  gateway: PolicyGatewayRow[];
  /** How many tools each gateway's tools/list shows the bench user. */
  listed: { withoutPolicy: number; withPolicy: number };
}

/** The tools of the bench gateway, as its policy sees them: `echo` and 99 `records_NNN` per target. */
function benchTools(): ModelTool[] {
  const records = { type: 'object', properties: { accountId: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 100 }, since: { type: 'string' } }, required: ['accountId'] };
  const tools: ModelTool[] = [];
  for (let target = 1; target <= TARGETS; target += 1) {
    tools.push({ name: `tools-${target}___echo`, inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } });
    for (let n = 1; n < TOOLS_PER_ENDPOINT; n += 1) tools.push({ name: `tools-${target}___records_${String(n).padStart(3, '0')}`, inputSchema: records });
  }
  return tools;
}

/**
 * A set as a security team writes one: for each tool a few permits for a group with conditions on
 * the arguments, forbids on the arguments, and one policy in twenty a forbid on the principal for
 * every tool. About five policies per tool, on as many tools as the count needs; `echo` (what the
 * gateway rows call) permitted to the bench group for a greeting, forbidden for a password.
 */
export function benchPolicySet(count: number): string {
  const tools = benchTools().filter((tool) => !tool.name.endsWith('___echo'));
  const policies = [
    `@id("echo-greetings") permit (principal, action == Mandate::Action::"tools-1___echo", resource) when { principal.groups.contains("bench") && context.input.message like "hello*" };`,
    `@id("echo-no-passwords") forbid (principal, action == Mandate::Action::"tools-1___echo", resource) when { context.input.message like "*password*" };`,
  ];
  for (let i = policies.length; i < count; i += 1) {
    const tool = tools[Math.floor(i / 5) % tools.length]!.name;
    // Short ids and conditions: 1,000 policies must fit the 200 KB a set may hold.
    if (i % 20 === 0) policies.push(`@id("s${i}") forbid (principal, action, resource) when { principal.hasTag("suspension") && principal.getTag("suspension") == "c${i}" };`);
    else if (i % 5 === 4) policies.push(`@id("f${i}") forbid (principal, action == Mandate::Action::"${tool}", resource) when { context.input has limit && context.input.limit > ${50 + (i % 50)} };`);
    else if (i % 5 === 3) policies.push(`@id("f${i}") forbid (principal, action == Mandate::Action::"${tool}", resource) when { context.input.accountId like "secret-*" };`);
    else policies.push(`@id("p${i}") permit (principal, action == Mandate::Action::"${tool}", resource) when { principal.groups.contains("team-${i % 13}") && context.input.accountId like "acc-*" };`);
  }
  return policies.slice(0, count).join('\n');
}

const principal: PolicyPrincipal = { user: { iss: 'https://idp.example', sub: 'bench-user' }, claims: { groups: ['bench', 'team-2'], department: 'sales' }, scopes: [SCOPE], gateway: 'bench' };

/** `decide` as the gateway calls it, on a tool the set has policies about; and the engine alone over the whole set unsplit, for comparison. */
function benchEvaluation(count: number, samples: number, loads: number): PolicyEvaluationRow[] {
  const tools = benchTools();
  const parsed = parsePolicySet(benchPolicySet(count));
  const policy = ToolPolicy.load(`bench-evaluation-${count}`, 'bench', parsed, tools);
  const tool = tools.find((t) => t.name === 'tools-1___records_001')!;
  const request = { ...principal, tool, arguments: { accountId: 'acc-1', limit: 20, since: '2026-06-01' }, now: Date.now() };
  if (policy.decide(request).enforced.decision !== 'allow') throw new Error(`the ${count}-policy set does not permit the benchmark's call`);
  let decided = 'allow';
  const decide = () => void (decided = policy.decide(request).enforced.decision);
  // The engine over the whole set and the gateway's whole schema, pre-parsed: what splitting by action and a schema per tool save.
  cedar.preparseSchema(`bench-whole-${count}:schema`, cedarSchemaFor(tools));
  cedar.preparsePolicySet(`bench-whole-${count}`, { staticPolicies: { ...parsed.policies } });
  const user = { type: 'Mandate::User', id: 'https://idp.example#bench-user' };
  const gateway = { type: 'Mandate::Gateway', id: 'bench' };
  const whole = () =>
    void cedar.statefulIsAuthorized({
      principal: user,
      action: { type: 'Mandate::Action', id: tool.name },
      resource: gateway,
      context: { input: { accountId: 'acc-1', limit: 20, since: '2026-06-01' }, scopes: [SCOPE], time: Math.floor(Date.now() / 1000) },
      validateRequest: true,
      preparsedSchemaName: `bench-whole-${count}:schema`,
      preparsedPolicySetId: `bench-whole-${count}`,
      entities: [
        { uid: user, attrs: { iss: 'https://idp.example', sub: 'bench-user', groups: ['bench', 'team-2'] }, parents: [], tags: { department: 'sales' } },
        { uid: gateway, attrs: {}, parents: [] },
      ],
    });
  // What a reload costs (the gateway does it on policy-changed): parse, validate against the tools, split by action, pre-parse.
  // In a slot of its own: a reload of the evaluated object's slot supersedes it, and a superseded
  // object denies at once (which is what this row measured until 2026-12-03: about 5 µs of nothing).
  const load = () => void ToolPolicy.load(`bench-evaluation-${count}-reload`, 'bench', parsePolicySet(benchPolicySet(count)), tools);
  const evaluation = timed(decide, samples);
  if (decided !== 'allow' || policy.superseded) throw new Error(`the ${count}-policy evaluation row did not measure a permitted decision`);
  return [
    { name: `loading the set (parse, validate, split, pre-parse; ${tools.length} tools, ${loads} loads), ${count} policies`, policies: count, ...timed(load, loads) },
    { name: `evaluation (ToolPolicy.decide), ${count} policies`, policies: count, ...evaluation },
    { name: `Cedar engine alone, whole set and whole schema (${tools.length} tools), ${count} policies`, policies: count, ...timed(whole, samples) },
  ];
}

/**
 * The engine's fixed cost: one call with a single permit-all policy and no schema, but the
 * request, context and entities a gateway call passes (what crossing into the wasm module costs).
 */
function benchEngineFloor(samples: number): PolicyEvaluationRow {
  cedar.preparsePolicySet('bench-floor', { staticPolicies: { all: 'permit (principal, action, resource);' } });
  const user = { type: 'Mandate::User', id: 'https://idp.example#bench-user' };
  const gateway = { type: 'Mandate::Gateway', id: 'bench' };
  const call = () =>
    void cedar.statefulIsAuthorized({
      principal: user,
      action: { type: 'Mandate::Action', id: 'tools-1___echo' },
      resource: gateway,
      context: { input: { message: MESSAGE }, scopes: [SCOPE], time: Math.floor(Date.now() / 1000) },
      validateRequest: false,
      preparsedPolicySetId: 'bench-floor',
      entities: [
        { uid: user, attrs: { iss: 'https://idp.example', sub: 'bench-user', groups: ['bench', 'team-2'] }, parents: [], tags: { department: 'sales' } },
        { uid: gateway, attrs: {}, parents: [] },
      ],
    });
  return { name: 'Cedar engine call alone: one permit-all policy, no schema, a call\'s request and entities (the fixed cost)', policies: 1, ...timed(call, samples) };
}

/** What tools/list costs a principal seen for the first time: every tool of the gateway asked of the set (no cached answers). */
function benchFirstListing(samples: number): PolicyEvaluationRow {
  const tools = benchTools();
  const policy = ToolPolicy.load('bench-listing', 'bench', parsePolicySet(benchPolicySet(GATEWAY_POLICIES)), tools);
  let n = 0;
  const list = () => {
    n += 1;
    const mayPermit = policy.mayPermit({ ...principal, user: { ...principal.user, sub: `listing-${n}` } });
    if (tools.filter((tool) => mayPermit(tool.name)).length === 0) throw new Error('the listing shows nothing');
  };
  return { name: `tools/list policy filter, a principal not seen before (${tools.length} tools, ${GATEWAY_POLICIES} policies)`, policies: GATEWAY_POLICIES, ...timed(list, samples) };
}

function timed(work: () => void, samples: number): { p50Us: number; p99Us: number } {
  for (let i = 0; i < Math.min(500, Math.max(1, samples / 10)); i += 1) work();
  const took: number[] = [];
  for (let i = 0; i < samples; i += 1) {
    const started = performance.now();
    work();
    took.push((performance.now() - started) * 1000);
  }
  took.sort((a, b) => a - b);
  return { p50Us: percentile(took, 50), p99Us: percentile(took, 99) };
}

function sessionPool(clients: Client[], call: (client: Client) => Promise<void>): RequestFn {
  const free = [...clients];
  return async () => {
    const client = free.pop();
    if (!client) throw new Error('more calls in flight than MCP sessions');
    try {
      await call(client);
    } finally {
      free.push(client);
    }
  };
}

async function connect(count: number, url: string, token: string): Promise<Client[]> {
  const clients: Client[] = [];
  for (let i = 0; i < count; i += 8) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(8, count - i) }, async () => {
          const client = new Client({ name: 'mandate-bench', version: '1.0.0' });
          await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } }, fetch: requestFetch }));
          return client;
        }),
      )),
    );
  }
  return clients;
}

const echoed = (result: Awaited<ReturnType<Client['callTool']>>) => {
  const text = (result.content as { type: string; text?: string }[] | undefined)?.[0]?.text;
  if (result.isError || text !== MESSAGE) throw new Error(`the echo tool answered ${JSON.stringify(result).slice(0, 300)}`);
};

/**
 * The policy rows: evaluation p50/p99 with 10, 100 and 1,000 policies (in process, as the gateway
 * decides a call), the first tools/list of a principal, and through the gateway `tools/call` and
 * `tools/list` on a gateway enforcing a 100-policy set against the same requests on a gateway
 * without one, in the same service and the same run (both gateways: five targets of the same
 * upstream, the vault's cached M2M token, an audit record per call).
 */
export async function benchPolicy(nc: NatsConnection, natsUrl: string, dataDir: string, options: { rounds: number; total: number; latencyCount: number; listCount: number; evaluations: number; loads: number }): Promise<PolicyReport> {
  process.stderr.write('• policy evaluation\n');
  const evaluation = [...POLICY_SET_SIZES.flatMap((count) => benchEvaluation(count, options.evaluations, options.loads)), benchEngineFloor(options.evaluations), benchFirstListing(Math.max(20, Math.floor(options.evaluations / 20)))];
  const upstream = await startBenchUpstream(TARGETS);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // BENCH_DECISION_LOG_RETENTION_DAYS=0 turns the decision log off, to tell its cost from evaluation's.
  const decisionLogDays = process.env['BENCH_DECISION_LOG_RETENTION_DAYS'];
  const env = {
    GATEWAY_HTTP_PORT: port,
    GATEWAY_PUBLIC_URL: base,
    GATEWAY_AUDIT_SALT: randomBytes(32).toString('base64url'),
    VAULT_RATE_LIMIT_PER_SECOND: 1_000_000,
    VAULT_RATE_LIMIT_BURST: 1_000_000,
    ...(decisionLogDays === undefined ? {} : { GATEWAY_DECISION_LOG_RETENTION_DAYS: decisionLogDays }),
  };
  const { idp, bus, stop } = await startServices(nc, natsUrl, dataDir, [directoryService, authorizerService, vaultService, policyService, gatewayService], env);
  const clients: Client[] = [];
  try {
    await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: TENANT, name: 'tools-m2m', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['bench-plain', 'bench-policy'] });
    await bus.request(policyCreateEndpoint, { tenant: TENANT, name: 'bench', text: benchPolicySet(GATEWAY_POLICIES) });
    const resources: Record<string, string> = {};
    for (const name of ['bench-plain', 'bench-policy']) {
      const resource = `${base}/mcp/${TENANT}/${name}`;
      resources[name] = resource;
      const pair = await generateKeyPair('ES256', { extractable: true });
      const key = { kid: `${name}-key`, alg: 'ES256' };
      await bus.request(workloadCreateEndpoint, { tenant: TENANT, name, publicKeys: { keys: [{ ...(await exportJWK(pair.publicKey)), ...key } as never] } });
      await bus.request(authorizerSetEndpoint, { tenant: TENANT, name, authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource], allowedScopes: [SCOPE] } });
      await bus.request(gatewayCreateEndpoint, { tenant: TENANT, name, workload: { name, privateJwk: { ...(await exportJWK(pair.privateKey)), ...key } as never }, authorizationServers: [idp.issuer], scopesSupported: [SCOPE] });
      for (let n = 1; n <= TARGETS; n += 1) {
        await bus.request(targetAddEndpoint, { tenant: TENANT, gateway: name, target: { name: `tools-${n}`, source: { kind: 'mcp', url: upstream.url(n) }, credential: { kind: 'oauth2-m2m', provider: 'tools-m2m', scopes: [UPSTREAM_SCOPE] }, defaultScopes: [SCOPE] } });
      }
    }
    await bus.request(policyAttachEndpoint, { tenant: TENANT, gateway: 'bench-policy', policy: 'bench', mode: 'enforce' });
    const token = async (gateway: string) => idp.userAccessToken({ sub: 'bench-user', audience: resources[gateway]!, scope: SCOPE, claims: { groups: ['bench', 'team-2'] } });
    process.stderr.write(`• opening ${CONCURRENCY} MCP sessions at each of two gateways\n`);
    const plain = await connect(CONCURRENCY, resources['bench-plain']!, await token('bench-plain'));
    const withPolicy = await connect(CONCURRENCY, resources['bench-policy']!, await token('bench-policy'));
    clients.push(...plain, ...withPolicy);
    echoed(await plain[0]!.callTool({ name: 'tools-1___echo', arguments: { message: MESSAGE } }));
    echoed(await withPolicy[0]!.callTool({ name: 'tools-1___echo', arguments: { message: MESSAGE } }));
    // The policy gateway enforces: a forbidden message is refused, so the row measures real decisions.
    const refused = await withPolicy[0]!.callTool({ name: 'tools-1___echo', arguments: { message: 'hello, my password is' } }).then(() => undefined, (error: unknown) => error as { code?: number });
    if (refused?.code !== -32003) throw new Error('the policy gateway did not enforce its policy set');
    const plainListed = (await plain[0]!.listTools()).tools.length;
    const policyListed = (await withPolicy[0]!.listTools()).tools.length;
    if (plainListed !== TARGETS * TOOLS_PER_ENDPOINT || policyListed === 0 || policyListed >= plainListed) throw new Error(`unexpected listings: ${plainListed} without policy, ${policyListed} with`);
    const call = (pool: Client[]) => sessionPool(pool, async (c) => echoed(await c.callTool({ name: 'tools-1___echo', arguments: { message: MESSAGE } })));
    const list = (pool: Client[], count: number) =>
      sessionPool(pool, async (c) => {
        if ((await c.listTools()).tools.length !== count) throw new Error('tools/list lost tools');
      });
    const rows = [
      { name: PLAIN_CALL_ROW, request: call(plain) },
      { name: POLICY_CALL_ROW, request: call(withPolicy) },
      { name: PLAIN_LIST_ROW, latencyOnly: true, latencyCount: options.listCount, request: list(plain, plainListed) },
      { name: POLICY_LIST_ROW, latencyOnly: true, latencyCount: options.listCount, request: list(withPolicy, policyListed) },
    ];
    const measured = await measureInRounds('policy gateway round', rows, { ...options, warmup: { total: Math.max(200, options.total / 10), concurrency: CONCURRENCY }, concurrency: CONCURRENCY });
    const [plainCall] = measured;
    const gateway = measured.map((row) => {
      const { name, medianUs, p99Us, requestsPerSecond } = row;
      // Only the call is the same request with and without policy: the lists differ in what they show.
      const against = name === POLICY_CALL_ROW ? plainCall : undefined;
      return {
        name,
        medianUs,
        p99Us,
        requestsPerSecond,
        ...(against ? { addedMedianUs: addedMedianUs(row, against) } : {}),
        ...(name === POLICY_CALL_ROW ? { throughputRatio: requestsPerSecond / plainCall!.requestsPerSecond } : {}),
      };
    });
    return { evaluation, gateway, listed: { withoutPolicy: plainListed, withPolicy: policyListed } };
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await stop();
    await upstream.stop();
  }
}

export function printPolicy(report: PolicyReport): void {
  printTable(['policy evaluation', 'p50 µs', 'p99 µs'], report.evaluation.map((r) => [r.name, r.p50Us.toFixed(1), r.p99Us.toFixed(1)]));
  process.stdout.write(`tools/list shows the bench user ${report.listed.withoutPolicy} tools without policy, ${report.listed.withPolicy} with the set\n`);
  printTable(
    ['gateway with policy', 'median µs', 'p99 µs', `calls/s @${CONCURRENCY}`, 'throughput / no policy', 'added median µs'],
    report.gateway.map((r) => [r.name, r.medianUs.toFixed(0), r.p99Us.toFixed(0), r.requestsPerSecond ? r.requestsPerSecond.toFixed(0) : '—', r.throughputRatio === undefined ? '—' : percent(r.throughputRatio), r.addedMedianUs === undefined ? '—' : r.addedMedianUs.toFixed(0)]),
  );
}

export function policyVerdict(report: PolicyReport) {
  const at100 = report.evaluation.find((r) => r.policies === 100 && r.name.startsWith('evaluation'))!;
  const call = report.gateway.find((r) => r.name === POLICY_CALL_ROW)!;
  const met = (ok: boolean) => (ok ? 'met' : 'missed');
  return {
    policyEvaluationTarget: met(at100.p50Us < POLICY_EVALUATION_P50_TARGET_US),
    policyAddedCallTarget: met((call.addedMedianUs ?? Infinity) <= POLICY_ADDED_CALL_MEDIAN_TARGET_US),
  };
}
