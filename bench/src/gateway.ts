import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { authorizerSetEndpoint, gatewayCreateEndpoint, providerCreateEndpoint, targetAddEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { fetchWithRequestSignals } from '@mandate/http';
import { freePort } from '@mandate/testing';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { gatewayService } from '@mandate/gateway/module';
import { vaultService } from '@mandate/vault/module';
import { addedMedianUs, measureInRounds, type RequestFn } from './measure.js';
import { startBenchUpstream, TOOLS_PER_ENDPOINT } from './mcp-upstream.js';
import { startServices } from './services.js';
import { percent, printTable } from './table.js';

/** The load's MCP clients, as docs/gateway.md advises agents: each request with its own abort signal (the SDK shares its transport's, and Node's fetch leaves a listener on it per request). */
const requestFetch = fetchWithRequestSignals();

/** Calls in flight in the throughput rows: one on each of this many MCP sessions. */
export const GATEWAY_CONCURRENCY = 64;
export const GATEWAY_TARGETS = 5;
/** The gateway issue's targets. */
export const GATEWAY_ADDED_MEDIAN_TARGET_US = 1_000;
export const GATEWAY_THROUGHPUT_TARGET = 0.5;
export const GATEWAY_LIST_TARGET_US = 5_000;

const TENANT = 'bench-gw';
const SCOPE = 'bench.tools';
/** What the gateway's M2M token is asked for at the IdP (the upstream does not check it). */
const UPSTREAM_SCOPE = 'upstream.call';
/** The direct callers' bearer token (the upstream only checks that there is one); the gateway's is its M2M token. */
const DIRECT_TOKEN = 'direct-bench-caller';
export const GATEWAY_CREDENTIAL = 'oauth2-m2m';
export const GATEWAY_CALL_ROW = 'tools/call through the gateway (cached M2M, scope check, audit)';
export const GATEWAY_LIST_ROW = `tools/list through the gateway (${GATEWAY_TARGETS * TOOLS_PER_ENDPOINT} tools in ${GATEWAY_TARGETS} targets)`;
const DIRECT_CALL_ROW = 'tools/call directly at the upstream (SDK client)';
const DIRECT_LIST_ROW = `tools/list directly at an SDK server with the same ${GATEWAY_TARGETS * TOOLS_PER_ENDPOINT} tools`;

export interface GatewayRow {
  name: string;
  medianUs: number;
  p99Us: number;
  /** tools/call per second with a call in flight on each of 64 sessions; 0 for the tools/list rows (latency only). */
  requestsPerSecond: number;
  /** Against the direct call of the same run; 0 for the tools/list rows. */
  throughputRatio: number;
  /** Median latency over that of the same request made directly, in the same run; none for the direct rows. */
  addedMedianUs?: number;
}

export interface GatewayReport {
  /** How the gateway authenticates to the upstream: the vault's M2M token, cached by the gateway. */
  credential: typeof GATEWAY_CREDENTIAL;
  concurrency: number;
  rows: GatewayRow[];
}

/** MCP sessions, each used by one caller at a time: a throughput row keeps a call in flight on every one of them. */
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

async function connectAll(count: number, url: string, token: string): Promise<Client[]> {
  const clients: Client[] = [];
  // A few at a time: the first initialize of each is not what the rows measure.
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

const echoed = (message: string) => (result: Awaited<ReturnType<Client['callTool']>>) => {
  const text = (result.content as { type: string; text?: string }[] | undefined)?.[0]?.text;
  if (result.isError || text !== message) throw new Error(`the echo tool answered ${JSON.stringify(result).slice(0, 300)}`);
};

/**
 * The gateway rows: `tools/call` of a trivial tool (`echo`) through the gateway (the user's token
 * checked once and then from the principal cache, the tool's scopes checked, its arguments
 * validated, the cached M2M token from the vault, the call to the upstream, an audit record
 * published to JetStream and acknowledged) against the same tool called directly at the same
 * upstream with the official SDK client, in the same run; and `tools/list` through the gateway
 * for a principal who sees 500 tools in 5 targets, against an SDK server listing the same tools.
 */
export async function benchGateway(
  nc: NatsConnection,
  natsUrl: string,
  dataDir: string,
  options: { rounds: number; total: number; latencyCount: number; listCount: number },
): Promise<GatewayReport> {
  const upstream = await startBenchUpstream(GATEWAY_TARGETS);
  const port = await freePort();
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const resource = `${gatewayUrl}/mcp/${TENANT}/bench`;
  const env = {
    GATEWAY_HTTP_PORT: port,
    GATEWAY_PUBLIC_URL: gatewayUrl,
    GATEWAY_AUDIT_SALT: randomBytes(32).toString('base64url'),
    VAULT_RATE_LIMIT_PER_SECOND: 1_000_000,
    VAULT_RATE_LIMIT_BURST: 1_000_000,
  };
  const { idp, bus, stop } = await startServices(nc, natsUrl, dataDir, [directoryService, authorizerService, vaultService, gatewayService], env);
  const clients: Client[] = [];
  try {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const key = { kid: 'bench-gateway-key', alg: 'ES256' };
    await bus.request(workloadCreateEndpoint, { tenant: TENANT, name: 'bench-gateway', publicKeys: { keys: [{ ...(await exportJWK(pair.publicKey)), ...key } as never] } });
    await bus.request(authorizerSetEndpoint, { tenant: TENANT, name: 'bench-gateway', authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource], allowedScopes: [SCOPE] } });
    await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: TENANT, name: 'tools-m2m', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['bench-gateway'] });
    await bus.request(gatewayCreateEndpoint, {
      tenant: TENANT,
      name: 'bench',
      workload: { name: 'bench-gateway', privateJwk: { ...(await exportJWK(pair.privateKey)), ...key } as never },
      authorizationServers: [idp.issuer],
      scopesSupported: [SCOPE],
    });
    for (let n = 1; n <= GATEWAY_TARGETS; n += 1) {
      await bus.request(targetAddEndpoint, {
        tenant: TENANT,
        gateway: 'bench',
        target: { name: `tools-${n}`, source: { kind: 'mcp', url: upstream.url(n) }, credential: { kind: 'oauth2-m2m', provider: 'tools-m2m', scopes: [UPSTREAM_SCOPE] }, defaultScopes: [SCOPE] },
      });
    }
    const userToken = await idp.userAccessToken({ sub: 'bench-user', audience: resource, scope: SCOPE });

    process.stderr.write(`• opening ${GATEWAY_CONCURRENCY} MCP sessions at the gateway and ${GATEWAY_CONCURRENCY} at the upstream\n`);
    const viaGateway = await connectAll(GATEWAY_CONCURRENCY, resource, userToken);
    clients.push(...viaGateway);
    const direct = await connectAll(GATEWAY_CONCURRENCY, upstream.url(1), DIRECT_TOKEN);
    clients.push(...direct);
    const { tools } = await viaGateway[0]!.listTools();
    const listed = tools.length;
    if (listed !== GATEWAY_TARGETS * TOOLS_PER_ENDPOINT) throw new Error(`the principal sees ${listed} tools at the gateway, not ${GATEWAY_TARGETS * TOOLS_PER_ENDPOINT}`);
    upstream.setListing(tools);
    const message = 'hello from the benchmark';
    echoed(message)(await viaGateway[0]!.callTool({ name: 'tools-1___echo', arguments: { message } }));
    // The IdP's client-credentials tokens are opaque here (no resource indicator): that one was issued is what can be checked.
    const m2mIssued = idp.tokenRequests.some((r) => r.grantType === 'client_credentials' && r.status === 200);
    if (!m2mIssued || !upstream.lastAuthorization || upstream.lastAuthorization === `Bearer ${DIRECT_TOKEN}`) throw new Error("the gateway did not call the upstream with the vault's M2M token");
    const directList = await connectAll(1, upstream.listUrl, DIRECT_TOKEN);
    clients.push(...directList);
    const lists = (pool: Client[]) =>
      sessionPool(pool, async (c) => {
        if ((await c.listTools()).tools.length !== listed) throw new Error('tools/list lost tools');
      });

    const rows = [
      { name: DIRECT_CALL_ROW, request: sessionPool(direct, async (c) => echoed(message)(await c.callTool({ name: 'echo', arguments: { message } }))) },
      { name: GATEWAY_CALL_ROW, request: sessionPool(viaGateway, async (c) => echoed(message)(await c.callTool({ name: 'tools-1___echo', arguments: { message } }))) },
      { name: DIRECT_LIST_ROW, latencyOnly: true, latencyCount: options.listCount, request: lists(directList) },
      { name: GATEWAY_LIST_ROW, latencyOnly: true, latencyCount: options.listCount, request: lists(viaGateway) },
    ];
    const concurrency = GATEWAY_CONCURRENCY;
    const measured = await measureInRounds('gateway round', rows, { ...options, warmup: { total: Math.max(200, options.total / 10), concurrency }, concurrency });
    const directOf = (name: string) => measured.find((r) => r.name === (name === GATEWAY_CALL_ROW ? DIRECT_CALL_ROW : DIRECT_LIST_ROW))!;
    return {
      credential: GATEWAY_CREDENTIAL,
      concurrency,
      rows: measured.map((row) => ({
        name: row.name,
        medianUs: row.medianUs,
        p99Us: row.p99Us,
        requestsPerSecond: row.requestsPerSecond,
        throughputRatio: row.latencyOnly ? 0 : row.requestsPerSecond / measured[0]!.requestsPerSecond,
        ...(row.name === GATEWAY_CALL_ROW || row.name === GATEWAY_LIST_ROW ? { addedMedianUs: addedMedianUs(row, directOf(row.name)) } : {}),
      })),
    };
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await stop();
    await upstream.stop();
  }
}

export function printGateway(report: GatewayReport): void {
  const header = [`gateway (credential: ${report.credential})`, 'median µs', 'p99 µs', `calls/s @${report.concurrency}`, 'throughput / direct', 'added median µs'];
  printTable(
    header,
    report.rows.map((r) => [
      r.name,
      r.medianUs.toFixed(0),
      r.p99Us.toFixed(0),
      r.requestsPerSecond ? r.requestsPerSecond.toFixed(0) : '—',
      r.requestsPerSecond ? percent(r.throughputRatio) : '—',
      r.addedMedianUs === undefined ? '—' : r.addedMedianUs.toFixed(0),
    ]),
  );
}

export function gatewayVerdict(report: GatewayReport) {
  const call = report.rows.find((r) => r.name === GATEWAY_CALL_ROW)!;
  const list = report.rows.find((r) => r.name === GATEWAY_LIST_ROW)!;
  const met = (ok: boolean) => (ok ? 'met' : 'missed');
  return {
    gatewayLatencyTarget: met((call.addedMedianUs ?? Infinity) <= GATEWAY_ADDED_MEDIAN_TARGET_US),
    gatewayThroughputTarget: met(call.throughputRatio >= GATEWAY_THROUGHPUT_TARGET),
    gatewayListTarget: met(list.medianUs < GATEWAY_LIST_TARGET_US),
  };
}
