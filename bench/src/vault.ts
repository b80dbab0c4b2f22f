import { exportJWK, generateKeyPair } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, runService } from '@mandate/bus';
import { baseEnvSchema } from '@mandate/config';
import { apiKeyEndpoint, oauth2TokenEndpoint, providerCreateEndpoint, tokenForWorkloadEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { startTestIdp } from '@mandate/testing/idp';
import { signClientAssertion } from '@mandate/wat';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { vaultService } from '@mandate/vault/module';
import { latency, median, throughput, type RequestFn } from './measure.js';

export const VAULT_CONCURRENCY = 256;
export const PACED_RATE = 1_000;

export interface VaultRow {
  name: string;
  medianUs: number;
  requestsPerSecond: number;
  /** Against raw NATS request/reply measured in the same run. */
  rawRatio: number;
  /** p99 latency while requests arrive at a steady 1,000 per second. */
  pacedP99Ms: number;
}

/** Requests at a steady rate (not waiting for each other); the p99 of their latencies. */
async function pacedP99(request: RequestFn, perSecond: number, seconds: number): Promise<number> {
  const samples: number[] = [];
  const pending: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < perSecond * seconds; i += 1) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sent = performance.now();
    pending.push(request().then(() => void samples.push(performance.now() - sent)));
  }
  await Promise.all(pending);
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length * 0.99)]!;
}

/**
 * The vault rows (issue 4): a cached M2M `oauth2-token` and an `api-key` over NATS, each with WAT
 * verification, the provider allow-list, the rate limiter and an audit record per release;
 * throughput at concurrency 256 against raw NATS from the same run, and p99 at 1,000 req/s.
 */
export async function benchVault(
  nc: NatsConnection,
  natsUrl: string,
  dataDir: string,
  rawRequestsPerSecond: number,
  options: { rounds: number; total: number; pacedSeconds: number },
): Promise<VaultRow[]> {
  const idp = await startTestIdp();
  const logger = createLogger('bench', { level: 'silent' });
  const env = {
    ...baseEnvSchema.parse({ NATS_URL: natsUrl, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: dataDir }),
    AUTHORIZER_HTTP_PORT: 0,
    VAULT_RATE_LIMIT_PER_SECOND: 1_000_000,
    VAULT_RATE_LIMIT_BURST: 1_000_000,
  };
  const services = [await runService(directoryService, env, { logger }), await runService(authorizerService, env, { logger }), await runService(vaultService, env, { logger })];
  try {
    const bus = new BusClient(nc, { defaultTimeoutMs: 30_000 });
    const pair = await generateKeyPair('ES256', { extractable: true });
    await bus.request(workloadCreateEndpoint, { tenant: 'bench-vault', name: 'bench-agent', publicKeys: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1' } as never] } });
    const clientAssertion = await signClientAssertion({ workload: 'bench-agent', privateJwk: { ...(await exportJWK(pair.privateKey)), kid: 'k1' } });
    const wat = (await bus.request(tokenForWorkloadEndpoint, { tenant: 'bench-vault', workload: 'bench-agent', clientAssertion })).token;
    await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'bench-vault', name: 'reports', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['bench-agent'] });
    await bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'bench-vault', name: 'search', apiKey: 'bench-api-key', allowedWorkloads: ['bench-agent'] });

    const rows: { name: string; request: RequestFn; rates: number[]; medians: number[] }[] = [
      { name: 'vault oauth2-token M2M (cached)', request: async () => void (await bus.request(oauth2TokenEndpoint, { tenant: 'bench-vault', workloadToken: wat, provider: 'reports', flow: 'M2M' })), rates: [], medians: [] },
      { name: 'vault api-key', request: async () => void (await bus.request(apiKeyEndpoint, { tenant: 'bench-vault', workloadToken: wat, provider: 'search' })), rates: [], medians: [] },
    ];
    for (const row of rows) await throughput(row.request, 500, VAULT_CONCURRENCY);
    for (let round = 1; round <= options.rounds; round += 1) {
      process.stderr.write(`• vault round ${round}/${options.rounds}\n`);
      for (const row of rows) {
        row.medians.push((await latency(row.request, Math.max(100, options.total / 20))).medianUs);
        row.rates.push(await throughput(row.request, options.total, VAULT_CONCURRENCY));
      }
    }
    const results: VaultRow[] = [];
    for (const row of rows) {
      process.stderr.write(`• ${row.name} at a steady ${PACED_RATE} req/s\n`);
      results.push({
        name: row.name,
        medianUs: median(row.medians),
        requestsPerSecond: median(row.rates),
        rawRatio: median(row.rates) / rawRequestsPerSecond,
        pacedP99Ms: await pacedP99(row.request, PACED_RATE, options.pacedSeconds),
      });
    }
    return results;
  } finally {
    for (const service of services.reverse()) await service.stop();
    await idp.stop();
  }
}
