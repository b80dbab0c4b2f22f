import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { metrics, SpanKind } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { AlwaysOnSampler, InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { gatewayCreateEndpoint, MandateError, providerCreateEndpoint, targetAddEndpoint, targetSyncEndpoint } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

/*
 * What the gateway tells an operator. One trace from the MCP request through the vault to the
 * target: a client's `traceparent` is
 * continued by the gateway, the authorizer and the vault join it when the gateway gets its WAT and
 * the target's credential, and the target receives it on the outbound call. The call goes to a
 * replica that has just started, so the credential is not yet cached and the vault is asked
 * within the call. And the metrics, as a collector reads them: calls by gateway, target, tool and
 * outcome with their latency histogram, and lists that left out a target that cannot be reached.
 */
const missing = natsServerMissing("the gateway's traces and metrics");

describe.skipIf(missing)("the gateway's traces and metrics", () => {
  const spans = new InMemorySpanExporter();
  const tracing = new NodeTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor(spans)] });
  const exported = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const metricReader = new PeriodicExportingMetricReader({ exporter: exported, exportIntervalMillis: 3_600_000 });
  let h: TestSystem;
  let idp: TestIdp;
  let tools: SampleToolServer;
  let client: Client | undefined;
  let publicUrl: string;
  let freshReplicaUrl: string;

  beforeAll(async () => {
    tracing.register();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [metricReader] }));
    const [port, freshPort] = [await freePort(), await freePort()];
    publicUrl = `http://127.0.0.1:${port}`;
    freshReplicaUrl = `http://127.0.0.1:${freshPort}`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, tools] = await Promise.all([startTestIdp(), startSampleToolServer()]);
    const key = await h.workload('sales-gateway');
    await h.setAuthorizer('acme', 'sales-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [`${publicUrl}/mcp/acme/sales`], allowedScopes: ['crm.read'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'sales-tools', apiKey: 'trace-test-key', allowedWorkloads: ['sales-gateway'] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'sales', workload: { name: 'sales-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer], scopesSupported: ['crm.read'] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales', target: { name: 'sales-tools', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'api-key', provider: 'sales-tools' }, defaultScopes: ['crm.read'] } });
    // A second replica behind the same public URL, started now: nothing of the gateway's is cached there yet.
    await h.add('gateway', { env: { GATEWAY_HTTP_PORT: String(freshPort) } });
  }, 120_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await h?.stop();
    await Promise.all([idp?.stop(), tools?.stop()]);
    await tracing.shutdown();
    metrics.disable();
  });

  /** The data points of one metric as the collector last read them. */
  const dataPoints = async (name: string) => {
    await metricReader.forceFlush();
    const latest = exported.getMetrics().at(-1);
    return latest?.scopeMetrics.flatMap((scope) => scope.metrics).find((metric) => metric.descriptor.name === name)?.dataPoints ?? [];
  };

  it('continues the client trace in the gateway, the authorizer and the vault, and hands it to the target', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const token = await idp.userAccessToken({ sub: 'sarah', audience: `${publicUrl}/mcp/acme/sales`, scope: 'crm.read' });
    client = new Client({ name: 'trace-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${freshReplicaUrl}/mcp/acme/sales`), { requestInit: { headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` } } }));
    const answer = await client.callTool({ name: 'sales-tools___whoami', arguments: {} });
    expect(answer.structuredContent).toEqual({ authorization: 'Bearer trace-test-key' });
    expect(tools.requests.at(-1)?.traceparent?.split('-')[1]).toBe(traceId);
    // A service ends its span once it has answered: wait for each to be exported.
    const inTrace = () => spans.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    // A NATS endpoint's span is `<subject> process` (OpenTelemetry's messaging conventions).
    const served = (subject: string) => inTrace().some((span) => span.name === `${subject} process` && span.kind === SpanKind.SERVER);
    expect(inTrace().some((span) => span.name === 'MCP POST' && span.kind === SpanKind.SERVER)).toBe(true);
    await expect.poll(() => served('mandate.authorizer.v1.token-for-workload')).toBe(true);
    await expect.poll(() => served('mandate.vault.v1.api-key')).toBe(true);
    await expect.poll(() => h.audit.filter((r) => r.traceId === traceId).map((r) => `${r.service}/${r.action}`)).toEqual(expect.arrayContaining(['vault/api-key-release', 'gateway/tool-call']));
  });

  it('counts calls by gateway, target, tool and outcome with their latency, and lists that left out an unreachable target', async () => {
    await client!.callTool({ name: 'sales-tools___whoami', arguments: {} });
    expect((await client!.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 42 } })).isError).toBe(true);
    const calls = await dataPoints('mandate.gateway.calls');
    const of = (outcome: string) => calls.find((point) => point.attributes['outcome'] === outcome && point.attributes['tool'] === (outcome === 'succeeded' ? 'whoami' : 'crm_notes'));
    expect(of('succeeded')).toMatchObject({ attributes: { gateway: 'sales', target: 'sales-tools', tool: 'whoami', outcome: 'succeeded' } });
    expect(of('succeeded')!.value).toBeGreaterThanOrEqual(2);
    expect(of('invalid_arguments')?.value).toBe(1);
    const durations = (await dataPoints('mandate.gateway.call.duration')) as DataPoint<Histogram>[];
    const whoamiLatency = durations.find((point) => point.attributes['tool'] === 'whoami' && point.attributes['outcome'] === 'succeeded');
    expect(whoamiLatency?.value.count).toBeGreaterThanOrEqual(2);
    expect(whoamiLatency!.value.sum).toBeGreaterThan(0);

    // Requests refused before MCP are counted by why (the authorizer records a refused token).
    for (const authorization of [undefined, 'Bearer not-a-token']) {
      const response = await fetch(`${freshReplicaUrl}/mcp/acme/sales`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: '{}' });
      expect(response.status).toBe(401);
    }
    const refused = await dataPoints('mandate.gateway.requests.refused');
    expect(refused.find((point) => point.attributes['reason'] === 'no_token')?.value).toBe(1);
    expect(refused.find((point) => point.attributes['reason'] === 'invalid_token')?.value).toBe(1);

    // The target goes away: a sync that cannot reach it leaves its tools out of every list, counted.
    await tools.stop();
    const sync = await h.bus.request(targetSyncEndpoint, { tenant: 'acme', gateway: 'sales', target: 'sales-tools' }).then(() => undefined, (error: unknown) => error);
    expect(sync).toBeInstanceOf(MandateError);
    await expect.poll(async () => (await client!.listTools()).tools.map((tool) => tool.name), { timeout: 10_000 }).toEqual([]);
    expect((await dataPoints('mandate.gateway.targets.unreachable')).reduce((sum, point) => sum + (point.value as number), 0)).toBeGreaterThanOrEqual(1);
  });
});
