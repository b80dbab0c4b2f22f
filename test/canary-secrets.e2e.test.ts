import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlwaysOnSampler, InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import {
  apiKeyEndpoint,
  MandateError,
  oauth2TokenEndpoint,
  providerCreateEndpoint,
  providerUpdateEndpoint,
  tokenForJwtEndpoint,
  tokenForWorkloadEndpoint,
  type EndpointContract,
  type RequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing } from '@mandate/testing';
import { allWritten, canariesFound, everySpan, everyStoredMessage } from '@mandate/testing/canary-scan';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type ServiceName, type TestSystem } from '@mandate/testing/system';
import { signClientAssertion } from '@mandate/wat';

/*
 * Secrets and tokens never appear in logs, error replies, events, audit records, trace attributes
 * or stored documents. Canary values are planted where secrets live (provider secrets, API keys)
 * and where tokens flow (the IdP's user and client-credentials tokens, WATs, client assertions),
 * a scenario runs through every credential path, good and bad, and then everything the system
 * wrote is read back and searched: every log line of every service at trace level, every error
 * reply, every message of every JetStream stream (events, audit intake, every KV bucket: the
 * trail, the vault's encrypted documents, the replay guard...), and every span with its attributes
 * and events.
 */
const missing = natsServerMissing('the canary scan of logs, errors, events, audit records, traces and documents');
const AUDIENCE = 'https://reports.acme.example';
const CANARY_API_KEY = 'canary-api-key-4b71d0e2a9';
const CANARY_CLIENT_SECRET = 'canary-client-secret-c93a51f7';
const CANARY_BAD_TOKEN = 'canary-not-a-token-7e0d42';
const SERVICES: readonly ServiceName[] = ['directory', 'authorizer', 'vault', 'audit'];

describe.skipIf(missing)('canary secrets and tokens appear nowhere the system writes', () => {
  const spans = new InMemorySpanExporter();
  // Always on: a request without a sampled parent would otherwise record nothing to scan.
  const tracing = new NodeTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor(spans)] });
  const logLines: string[] = [];
  const errorReplies: string[] = [];
  /** Every secret and token the scenario saw; none may be found anywhere. */
  const canaries = new Set<string>([CANARY_API_KEY, CANARY_CLIENT_SECRET, CANARY_BAD_TOKEN, 'test-app-secret']);
  let h: TestSystem;
  let idp: TestIdp;
  let agentKey: Awaited<ReturnType<TestSystem['workload']>>;

  /** A token is a canary, and so is its signature alone: half a token in a log is still a leak. */
  const plantToken = (token: string) => {
    canaries.add(token);
    const signature = token.split('.')[2];
    if (signature && signature.length >= 16) canaries.add(signature);
    return token;
  };
  const request = async <E extends EndpointContract>(endpoint: E, body: RequestOf<E>): Promise<ResponseOf<E> | MandateError> => {
    try {
      return await h.bus.request(endpoint, body);
    } catch (error) {
      if (!(error instanceof MandateError)) throw error;
      errorReplies.push(JSON.stringify({ code: error.code, message: error.message, issues: error.issues, details: error.details }));
      return error;
    }
  };
  const assertion = async () => plantToken(await signClientAssertion({ workload: 'report-agent', privateJwk: agentKey }));

  beforeAll(async () => {
    tracing.register();
    h = await startSystem({ services: [] });
    for (const name of SERVICES) {
      const sink = new PassThrough();
      sink.on('data', (chunk: Buffer) => logLines.push(...chunk.toString().split('\n').filter(Boolean)));
      await h.add(name, { logger: createLogger(name, { level: 'trace', destination: sink }) });
    }
    idp = await startTestIdp();
    agentKey = await h.workload('report-agent');
    await h.setAuthorizer('acme', 'report-agent', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [AUDIENCE] });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'acme',
      name: 'reporting',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['report-agent'],
    });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'weather', apiKey: CANARY_API_KEY, allowedWorkloads: ['report-agent'] });
  }, 60_000);

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
    await tracing.shutdown();
  });

  it('runs every credential path, good and bad, then finds no canary in anything written', async () => {
    // The good paths: a WAT for the agent, its M2M token, its API key, a WAT for a user's JWT, a consent request.
    const machineWat = await request(tokenForWorkloadEndpoint, { tenant: 'acme', workload: 'report-agent', clientAssertion: await assertion() });
    if (machineWat instanceof MandateError) throw machineWat;
    plantToken(machineWat.token);
    const m2m = await request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: machineWat.token, provider: 'reporting', flow: 'M2M' });
    if (m2m instanceof MandateError) throw m2m;
    plantToken(m2m.accessToken);
    expect(await request(apiKeyEndpoint, { tenant: 'acme', workloadToken: machineWat.token, provider: 'weather' })).toEqual({ apiKey: CANARY_API_KEY });
    const userJwt = plantToken(await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE, claims: { email: 'sarah@acme.example' } }));
    const userWat = await request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'report-agent', userToken: userJwt, clientAssertion: await assertion() });
    if (userWat instanceof MandateError) throw userWat;
    plantToken(userWat.token);
    const consent = await request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: userWat.token, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] });
    expect(consent).toBeInstanceOf(MandateError);
    expect((consent as MandateError).code).toBe('consent_required');

    // The bad paths, each carrying a secret or token where it does not belong.
    const refusals = await Promise.all([
      request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'report-agent', userToken: CANARY_BAD_TOKEN, clientAssertion: await assertion() }),
      request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'report-agent', userToken: userJwt, clientAssertion: userJwt }),
      request(tokenForWorkloadEndpoint, { tenant: 'acme', workload: 'report-agent', clientAssertion: userJwt }),
      request(apiKeyEndpoint, { tenant: 'acme', workloadToken: userJwt, provider: 'weather' }),
      request(apiKeyEndpoint, { tenant: 'acme', workloadToken: `${machineWat.token}x`, provider: 'weather' }),
      request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: CANARY_BAD_TOKEN, provider: 'reporting', flow: 'M2M' }),
      request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'leaky', vendor: 'custom', discoveryUrl: 'http://idp.example.com/.well-known/openid-configuration', clientId: 'c', clientSecret: CANARY_CLIENT_SECRET }),
      request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'BAD NAME', apiKey: CANARY_API_KEY } as never),
      request(providerUpdateEndpoint, { tenant: 'acme', name: 'weather', set: { clientSecret: CANARY_CLIENT_SECRET } } as never),
      // A replayed assertion: the replay guard stores its id, never the assertion.
      (async () => {
        const once = await assertion();
        await request(tokenForWorkloadEndpoint, { tenant: 'acme', workload: 'report-agent', clientAssertion: once });
        return request(tokenForWorkloadEndpoint, { tenant: 'acme', workload: 'report-agent', clientAssertion: once });
      })(),
    ]);
    expect(refusals.every((reply) => reply instanceof MandateError)).toBe(true);

    // Everything is written: the audit trail has chained what was published.
    await expect.poll(() => h.audit.length, { timeout: 10_000 }).toBeGreaterThan(10);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await tracing.forceFlush();

    const stored = await everyStoredMessage(h.nc);
    const traced = everySpan(spans.getFinishedSpans());

    // The scan covered something real: services logged at trace level, streams hold events, audit records and documents, spans were recorded.
    expect(logLines.length).toBeGreaterThan(20);
    expect(errorReplies.length).toBeGreaterThanOrEqual(10);
    // The intake stream is a work queue (emptied as records are chained): the records are read from the trail, and as they were published.
    expect(stored.some((m) => m.where.startsWith('MANDATE_AUDIT_TRAIL ') && m.text.includes('"action":"api-key-release"'))).toBe(true);
    expect(stored.some((m) => m.where.startsWith('MANDATE_EVENTS'))).toBe(true);
    expect(stored.some((m) => m.where.startsWith('KV_'))).toBe(true);
    expect(traced.length).toBeGreaterThan(10);

    expect(canariesFound(allWritten({ audit: h.audit, logLines, errors: errorReplies }, stored, traced), canaries)).toEqual([]);
  }, 90_000);
});
