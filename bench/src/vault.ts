import { exportJWK, generateKeyPair } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { apiKeyEndpoint, oauth2TokenEndpoint, providerCreateEndpoint, tokenForWorkloadEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { signClientAssertion } from '@mandate/wat';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { vaultService } from '@mandate/vault/module';
import { measureInRounds, percentile, type RequestFn } from './measure.js';
import { startServices } from './services.js';
import { percent, printTable } from './table.js';

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
  return percentile(samples.sort((a, b) => a - b), 99);
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
  // The limiter still runs on every release (it is part of what the rows measure) but never refuses one.
  const limits = { VAULT_RATE_LIMIT_PER_SECOND: 1_000_000, VAULT_RATE_LIMIT_BURST: 1_000_000 };
  const { idp, bus, stop } = await startServices(nc, natsUrl, dataDir, [directoryService, authorizerService, vaultService], limits);
  try {
    const pair = await generateKeyPair('ES256', { extractable: true });
    await bus.request(workloadCreateEndpoint, { tenant: 'bench-vault', name: 'bench-agent', publicKeys: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1' } as never] } });
    const clientAssertion = await signClientAssertion({ workload: 'bench-agent', privateJwk: { ...(await exportJWK(pair.privateKey)), kid: 'k1' } });
    const wat = (await bus.request(tokenForWorkloadEndpoint, { tenant: 'bench-vault', workload: 'bench-agent', clientAssertion })).token;
    await bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'bench-vault', name: 'reports', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['bench-agent'] });
    await bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'bench-vault', name: 'search', apiKey: 'bench-api-key', allowedWorkloads: ['bench-agent'] });

    const rows = [
      { name: 'vault oauth2-token M2M (cached)', request: async () => void (await bus.request(oauth2TokenEndpoint, { tenant: 'bench-vault', workloadToken: wat, provider: 'reports', flow: 'M2M' })) },
      { name: 'vault api-key', request: async () => void (await bus.request(apiKeyEndpoint, { tenant: 'bench-vault', workloadToken: wat, provider: 'search' })) },
    ];
    const concurrency = VAULT_CONCURRENCY;
    const measured = await measureInRounds('vault round', rows, { ...options, warmup: { total: 500, concurrency }, latencyCount: Math.max(100, options.total / 20), concurrency });
    const results: VaultRow[] = [];
    for (const { name, request, medianUs, requestsPerSecond } of measured) {
      process.stderr.write(`• ${name} at a steady ${PACED_RATE} req/s\n`);
      results.push({ name, medianUs, requestsPerSecond, rawRatio: requestsPerSecond / rawRequestsPerSecond, pacedP99Ms: await pacedP99(request, PACED_RATE, options.pacedSeconds) });
    }
    return results;
  } finally {
    await stop();
  }
}

export function printVault(rows: VaultRow[]): void {
  const header = ['vault', 'median µs', `req/s @${VAULT_CONCURRENCY}`, 'throughput / raw', `p99 ms @${PACED_RATE}/s`];
  printTable(header, rows.map((r) => [r.name, r.medianUs.toFixed(0), r.requestsPerSecond.toFixed(0), percent(r.rawRatio), r.pacedP99Ms.toFixed(2)]));
}
