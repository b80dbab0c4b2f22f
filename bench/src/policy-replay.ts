import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  authorizerSetEndpoint,
  decisionSealId,
  decisionSubject,
  gatewayCreateEndpoint,
  gatewayToolName,
  policyReplayEndpoint,
  providerCreateEndpoint,
  targetAddEndpoint,
  targetListEndpoint,
  tenantId,
  workloadCreateEndpoint,
  type DecisionEntry,
  type SealedDecisionRequest,
} from '@mandate/contracts';
import { EnvelopeCipher, loadDecisionLogKeys } from '@mandate/crypto';
import { parsePolicySet, ToolPolicy, type ModelTool } from '@mandate/tool-policy';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { gatewayService } from '@mandate/gateway/module';
import { policyService } from '@mandate/policy/module';
import { vaultService } from '@mandate/vault/module';
import { startBenchUpstream } from './mcp-upstream.js';
import { benchPolicySet } from './policy.js';
import { startServices } from './services.js';
import { printTable } from './table.js';

/** Issue 17: replay of 10,000 recorded calls against 100 policies in under 10 s. */
export const REPLAY_TARGET_SECONDS = 10;
const RECORDED_CALLS = 10_000;
const POLICIES = 100;
const TENANT = 'bench-replay';
const GATEWAY = 'bench-replay';

export interface PolicyReplayRow {
  name: string;
  entries: number;
  policies: number;
  /** Median over the rounds of one `mandate.policy.v1.replay` request, start to answer. */
  medianMs: number;
  entriesPerSecond: number;
  changed: number;
}

/** The candidate: the bench set with its thresholds and account patterns moved, so some decisions change both ways. */
function candidateSet(): string {
  return benchPolicySet(POLICIES).replaceAll('context.input.limit > ', 'context.input.limit >= ').replaceAll('"acc-*"', '"acc-1*"').replaceAll('"secret-*"', '"secret-1*"');
}

/**
 * Records `count` calls in the decision log as the gateway writes them (sealed with the decision
 * log's key ring, decided by the set in force), varied over 50 principals, 13 teams, the tools the
 * set names and arguments its conditions turn on.
 */
async function record(nc: NatsConnection, cipher: EnvelopeCipher, tools: readonly ModelTool[], count: number): Promise<void> {
  const inForce = ToolPolicy.load('bench-replay-recording', 'recorded', parsePolicySet(benchPolicySet(POLICIES)), tools);
  const named = tools.filter((tool) => /___records_0[0-2][0-9]$/.test(tool.name) || tool.name.endsWith('___echo'));
  const js = jetstream(nc);
  const encoder = new TextEncoder();
  const start = Date.now() - 3_600_000;
  for (let batch = 0; batch < count; batch += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, count - batch) }, async (_, k) => {
        const i = batch + k;
        const tool = named[i % named.length]!;
        const args = tool.name.endsWith('___echo') ? { message: i % 7 === 0 ? 'hello password' : `hello ${i}` } : { accountId: `${i % 9 === 0 ? 'secret' : 'acc'}-${i % 31}`, limit: 1 + (i % 100), ...(i % 3 === 0 ? { since: '2026-06-01' } : {}) };
        const request: SealedDecisionRequest = { claims: { groups: ['bench', `team-${i % 13}`], department: 'sales' }, scopes: ['bench.tools'], arguments: args, now: start + i };
        const principal = { iss: 'https://idp.example', sub: `user-${i % 50}` };
        const decided = inForce.decide({ user: principal, claims: request.claims, scopes: request.scopes, gateway: GATEWAY, tool, arguments: args, now: request.now }).enforced;
        const id = randomUUID();
        const entry: DecisionEntry = {
          id,
          tenant: tenantId(TENANT),
          gateway: GATEWAY,
          recordedAt: new Date(request.now).toISOString(),
          tool: tool.name,
          principal,
          policySet: 'bench',
          policyVersion: 'bench-version',
          mode: 'enforce',
          decided: { decision: decided.decision, determining: decided.determining },
          sealed: cipher.sealToString(JSON.stringify(request), decisionSealId(TENANT, GATEWAY, id)),
        };
        await js.publish(decisionSubject(TENANT, GATEWAY, id), encoder.encode(JSON.stringify(entry)), { msgID: id });
      }),
    );
  }
}

/**
 * The replay row: `mandate.policy.v1.replay` of a 100-policy candidate over 10,000 entries of a
 * gateway's decision log, through the policy service (read from JetStream, each entry opened,
 * decided by Cedar, compared, grouped), against the gateway's real tools (one target of 100).
 */
export async function benchPolicyReplay(nc: NatsConnection, natsUrl: string, dataDir: string, options: { rounds: number; entries?: number }): Promise<PolicyReplayRow> {
  const entries = options.entries ?? RECORDED_CALLS;
  const upstream = await startBenchUpstream(1);
  const { idp, bus, stop } = await startServices(nc, natsUrl, dataDir, [directoryService, authorizerService, vaultService, policyService, gatewayService], { GATEWAY_HTTP_PORT: 0 });
  try {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const key = { kid: 'replay-key', alg: 'ES256' };
    await bus.request(workloadCreateEndpoint, { tenant: TENANT, name: GATEWAY, publicKeys: { keys: [{ ...(await exportJWK(pair.publicKey)), ...key } as never] } });
    await bus.request(authorizerSetEndpoint, { tenant: TENANT, name: GATEWAY, authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: ['https://bench.example'] } });
    await bus.request(gatewayCreateEndpoint, { tenant: TENANT, name: GATEWAY, workload: { name: GATEWAY, privateJwk: { ...(await exportJWK(pair.privateKey)), ...key } as never }, authorizationServers: [idp.issuer] });
    // The upstream wants a bearer token, any one: an API key from the vault.
    await bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: TENANT, name: 'tools-key', apiKey: 'bench-api-key', allowedWorkloads: [GATEWAY] });
    await bus.request(targetAddEndpoint, { tenant: TENANT, gateway: GATEWAY, target: { name: 'tools-1', source: { kind: 'mcp', url: upstream.url(1) }, credential: { kind: 'api-key', provider: 'tools-key' } } });
    const tools = (await bus.request(targetListEndpoint, { tenant: TENANT, gateway: GATEWAY })).items.flatMap((target) => target.tools.map((tool) => ({ name: gatewayToolName(target, tool.name), inputSchema: tool.inputSchema })));
    const { ring } = await loadDecisionLogKeys({ mode: 'embedded', dataDir });
    process.stderr.write(`• recording ${entries} calls in the decision log\n`);
    await record(nc, new EnvelopeCipher(ring), tools, entries);
    const candidate = candidateSet();
    const took: number[] = [];
    let changed = 0;
    for (let round = 0; round < options.rounds; round += 1) {
      process.stderr.write(`• replay round ${round + 1} of ${options.rounds}\n`);
      const started = performance.now();
      const answer = await bus.request(policyReplayEndpoint, { tenant: TENANT, gateway: GATEWAY, since: '1d', candidate }, { timeoutMs: 120_000 });
      took.push(performance.now() - started);
      if (answer.evaluated !== entries) throw new Error(`replay evaluated ${answer.evaluated} of ${entries} recorded calls`);
      changed = answer.changed.allowedToDenied + answer.changed.deniedToAllowed;
      if (changed === 0 || answer.unchanged === 0) throw new Error('the candidate changes no decision, or every one: the row would not measure comparisons');
    }
    took.sort((a, b) => a - b);
    const medianMs = took[Math.floor(took.length / 2)]!;
    return { name: `policy replay, ${entries} recorded calls, ${POLICIES}-policy candidate`, entries, policies: POLICIES, medianMs, entriesPerSecond: entries / (medianMs / 1000), changed };
  } finally {
    await stop();
    await upstream.stop();
  }
}

export function policyReplayVerdict(row: PolicyReplayRow): { policyReplayTarget: 'met' | 'missed' } {
  return { policyReplayTarget: row.medianMs < REPLAY_TARGET_SECONDS * 1000 ? 'met' : 'missed' };
}

export function printPolicyReplay(row: PolicyReplayRow): void {
  printTable(['', 'median ms', 'entries/s', 'decisions changed'], [[row.name, row.medianMs.toFixed(0), row.entriesPerSecond.toFixed(0), String(row.changed)]]);
  process.stdout.write(`policy replay target (${RECORDED_CALLS} calls, ${POLICIES} policies, < ${REPLAY_TARGET_SECONDS} s): ${policyReplayVerdict(row).policyReplayTarget}\n`);
}
