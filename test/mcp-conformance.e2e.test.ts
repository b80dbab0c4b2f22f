import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, request as forward, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { gatewayCreateEndpoint, targetAddEndpoint, TOOL_NAME_SEPARATOR } from '@mandate/contracts';
import { freePort, natsServerMissing, skipReason } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { CONFORMANCE_TOOL_NAMES, startConformanceToolServer, startEverythingServer, type ConformanceToolServer, type EverythingServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

/*
 * The MCP conformance suite (@modelcontextprotocol/conformance, pinned in package.json) against
 * the gateway, in front of the MCP project's reference server (server-everything). The suite's
 * server mode is a CLI (no programmatic API is exported), run here once per scenario with
 * `server --url <url> --scenario <name> -o <dir>`; its checks are read from `<dir>/…/checks.json`.
 *
 * The suite's client sends no headers of its own (no option, no variable), while the gateway
 * wants a user's bearer token on every request: the suite talks to a loopback proxy that adds
 * `Authorization: Bearer <token>` and forwards everything else unchanged, streams included.
 *
 * Every scenario the suite lists must be classified below: applicable (run, must pass) or not
 * applicable with the reason, so a new scenario in a newer suite is a decision, not a silent gap.
 */

const APPLICABLE: Record<string, string> = {
  'server-initialize': 'initialize handshake and initialized notification over Streamable HTTP',
  ping: 'ping answers {}',
  'tools-list': 'tools/list: every tool (server-everything as everything___*, the suite tools as given) has a name, description and inputSchema',
  'server-sse-multiple-streams': 'three concurrent POSTs (tools/list) in one session each answered with a working stream (SEP-1699)',
  'tools-call-simple-text': 'text content passed through',
  'tools-call-image': 'image content passed through',
  'tools-call-audio': 'audio content passed through',
  'tools-call-embedded-resource': 'embedded resource content passed through',
  'tools-call-mixed-content': 'text, image and resource content in one result passed through',
  'tools-call-error': "a tool's isError result passed through as a result, not a protocol error",
  'json-schema-2020-12': "a 2020-12 input schema ($schema, $defs, additionalProperties) listed as the target gives it (suite: pending)",
};

/** Scenarios whose tools are at the upstream but need more than a tool's result passed back. */
const relayed = (tool: string, what: string) => `the suite's \`${tool}\` is served as given, but the scenario also expects ${what}, which the gateway does not do`;
const NOT_APPLICABLE: Record<string, string> = {
  'logging-set-level': 'logging/setLevel: the gateway proxies tools only and declares no logging capability',
  'completion-complete': 'completion/complete of a prompt argument: the gateway has no prompts or resources and no completions capability',
  'tools-call-with-logging': relayed('test_tool_with_logging', "the tool's notifications/message relayed (and logging/setLevel)"),
  'tools-call-with-progress': relayed('test_tool_with_progress', "the upstream's progress notifications relayed"),
  'tools-call-sampling': relayed('test_sampling', "the tool's sampling/createMessage relayed to the client (the gateway's upstream client declares no sampling)"),
  'tools-call-elicitation': relayed('test_elicitation', "the tool's form elicitation relayed to the client (the gateway elicits only its own URL-mode consent)"),
  'elicitation-sep1034-defaults': relayed('test_elicitation_sep1034_defaults', 'form elicitation relayed'),
  'elicitation-sep1330-enums': relayed('test_elicitation_sep1330_enums', 'form elicitation relayed'),
  'server-sse-polling': `the suite's \`test_reconnection\` (suite: pending) must close the SSE stream mid-call and the server replay it by Last-Event-ID, and the gateway keeps no event store`,
  'resources-list': 'resources: the gateway proxies tools only',
  'resources-read-text': 'resources: the gateway proxies tools only',
  'resources-read-binary': 'resources: the gateway proxies tools only',
  'resources-templates-read': 'resources: the gateway proxies tools only',
  'resources-subscribe': 'resources: the gateway proxies tools only',
  'resources-unsubscribe': 'resources: the gateway proxies tools only',
  'prompts-list': 'prompts: the gateway proxies tools only',
  'prompts-get-simple': 'prompts: the gateway proxies tools only',
  'prompts-get-with-args': 'prompts: the gateway proxies tools only',
  'prompts-get-embedded-resource': 'prompts: the gateway proxies tools only',
  'prompts-get-with-image': 'prompts: the gateway proxies tools only',
  'dns-rebinding-protection': 'scoped by the suite to localhost servers without authentication; the gateway authenticates every request by bearer token and serves public host names',
};

interface ConformanceCheck {
  id: string;
  name: string;
  description: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'SKIPPED' | 'INFO';
  errorMessage?: string;
  details?: Record<string, unknown>;
}

interface ScenarioRun {
  exitCode: number | null;
  output: string;
  checks: ConformanceCheck[];
}

function conformanceCli(): string | undefined {
  try {
    const entry = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/conformance/package.json')), 'dist', 'index.js');
    return existsSync(entry) ? entry : undefined;
  } catch {
    return undefined;
  }
}

const cli = conformanceCli();
const missing = natsServerMissing('MCP conformance suite against the gateway') ?? (cli ? undefined : skipReason('MCP conformance suite against the gateway', '@modelcontextprotocol/conformance is not installed (npm install)'));

function runCli(args: string[], timeoutMs = 20_000): Promise<{ exitCode: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli!, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`conformance ${args.join(' ')} took over ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (exitCode) => {
      clearTimeout(timer);
      resolve({ exitCode, output });
    });
  });
}

/** A loopback proxy to `target` that adds the bearer token and forwards everything else unchanged. */
async function bearerProxy(target: string, token: string): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    const upstream = forward(new URL(request.url ?? '/', target), { method: request.method, headers: { ...request.headers, authorization: `Bearer ${token}` } }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', (error) => {
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' }).end(`proxy: ${error.message}`);
      else response.destroy(error);
    });
    // The suite cancels SSE streams it has read enough of: close the gateway's side too.
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe.skipIf(missing)('the MCP conformance suite (server scenarios that apply to a gateway) against the gateway', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let everything: EverythingServer;
  let suiteTools: ConformanceToolServer;
  let proxy: { url: string; server: Server } | undefined;
  let endpoint: string;
  let gateway: string;
  let resultsDir: string;
  let listed: string[] = [];
  const results = new Map<string, string>();

  beforeAll(async () => {
    const port = await freePort();
    const gatewayUrl = (gateway = `http://127.0.0.1:${port}`);
    const path = '/mcp/acme/conformance';
    const resource = `${gatewayUrl}${path}`;
    resultsDir = await mkdtemp(join(tmpdir(), 'mcp-conformance-'));
    const list = runCli(['list', '--server']);
    list.catch(() => undefined); // awaited below; not unhandled if the system fails to start first
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    await h.add('gateway', { env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: gatewayUrl } });
    [idp, everything, suiteTools] = await Promise.all([startTestIdp(), startEverythingServer(), startConformanceToolServer()]);
    const key = await h.workload('conformance-gateway');
    await h.setAuthorizer('acme', 'conformance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource], allowedScopes: ['tools.read'] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'conformance', workload: { name: 'conformance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer], scopesSupported: ['tools.read'] });
    // get-env would show the test process's environment: hidden, as an operator would.
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'conformance', target: { name: 'everything', source: { kind: 'mcp', url: everything.url }, bindings: [{ tool: 'get-env', hidden: true }] } });
    // The suite calls its tools by their own names: that target's tools are named as it gives them.
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'conformance', target: { name: 'suite', source: { kind: 'mcp', url: suiteTools.url }, toolNames: 'as-given' } });
    proxy = await bearerProxy(gatewayUrl, await idp.userAccessToken({ sub: 'conformance', audience: resource, scope: 'tools.read' }));
    endpoint = `${proxy.url}${path}`;
    const { exitCode, output } = await list;
    if (exitCode !== 0) throw new Error(`conformance list --server failed (${exitCode}):\n${output}`);
    listed = [...output.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1]!);
  }, 60_000);

  afterAll(async () => {
    console.log(
      [
        `MCP conformance suite, server scenarios, against the gateway (${listed.length} listed):`,
        ...listed.map((name) => `  ${name}: ${results.get(name) ?? (name in NOT_APPLICABLE ? `skipped-not-applicable: ${NOT_APPLICABLE[name]}` : 'not run')}`),
      ].join('\n'),
    );
    await new Promise((resolve) => (proxy ? proxy.server.close(resolve) : resolve(undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), everything?.stop(), suiteTools?.stop()]);
    if (resultsDir) await rm(resultsDir, { recursive: true, force: true });
  });

  async function scenario(name: string): Promise<ScenarioRun> {
    const out = join(resultsDir, name);
    const { exitCode, output } = await runCli(['server', '--url', endpoint, '--scenario', name, '-o', out]);
    const [dir] = existsSync(out) ? await readdir(out) : [];
    const checks = dir ? (JSON.parse(await readFile(join(out, dir, 'checks.json'), 'utf8')) as ConformanceCheck[]) : [];
    return { exitCode, output, checks };
  }

  it('classifies every scenario the suite lists as applicable or not, with a reason', () => {
    expect(listed.length).toBeGreaterThan(0);
    const unclassified = listed.filter((name) => !(name in APPLICABLE) && !(name in NOT_APPLICABLE));
    expect(unclassified, 'new scenarios in the suite: decide whether they apply to a gateway').toEqual([]);
    expect(Object.keys(APPLICABLE).filter((name) => !listed.includes(name)), 'applicable scenarios the suite no longer has').toEqual([]);
  });

  it.each(Object.entries(APPLICABLE))('%s passes (%s)', async (name) => {
    const run = await scenario(name);
    const counted = run.checks.filter((c) => c.status === 'SUCCESS' || c.status === 'FAILURE');
    const failures = run.checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
    const passed = run.exitCode === 0 && counted.length > 0 && failures.length === 0;
    const line = passed
      ? `passed (${counted.length}/${counted.length} checks)`
      : `failed (exit ${run.exitCode}): ${failures.map((c) => `${c.id} ${c.status}: ${c.errorMessage ?? c.description}`).join('; ') || 'no checks recorded'}`;
    results.set(name, line);
    console.log(`conformance ${name}: ${line}`);
    expect(passed, `${name}: ${line}\n${run.output}`).toBe(true);
    // Not vacuous: the suite saw the upstream's tools, through the gateway.
    if (name === 'tools-list') expect(run.checks[0]?.details?.['tools']).toEqual(expect.arrayContaining([`everything${TOOL_NAME_SEPARATOR}echo`, 'test_simple_text']));
  });

  it('needs the proxy: the suite sends no token of its own, and straight at the gateway it is refused', async () => {
    const run = await runCli(['server', '--url', endpoint.replace(proxy!.url, gateway), '--scenario', 'server-initialize']);
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatch(/Failed to initialize: .*(401|Unauthorized)/i);
  });


  it('holds the reasons scenarios do not apply: tools only; the suite tools as given, the rest <target>___<tool>', async () => {
    const client = new Client({ name: 'conformance-reasons', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(endpoint)));
    try {
      expect(Object.keys(client.getServerCapabilities() ?? {})).toEqual(['tools']);
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain(`everything${TOOL_NAME_SEPARATOR}echo`);
      expect(names.filter((n) => !n.startsWith(`everything${TOOL_NAME_SEPARATOR}`)).sort()).toEqual([...CONFORMANCE_TOOL_NAMES].sort());
    } finally {
      await client.close();
    }
  });
});
