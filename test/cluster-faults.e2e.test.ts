import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectToBus, BusClient, JetStreamPublisher } from '@mandate/bus';
import type { JWK } from 'jose';
import { apiKeyEndpoint, AUDIT_CONSUMER, auditQueryEndpoint, auditVerifyEndpoint, jobCreateEndpoint, jobRunsEndpoint, MandateError, oauth2TokenEndpoint, providerCreateEndpoint, AUDIT_STREAM, REQUEST_HEADERS, type RequestOf, type RunView } from '@mandate/contracts';
import { MandateClient } from '@mandate/sdk';
import { addScheduler, startTestResource } from '@mandate/scheduler/testing';
import { VaultSeed } from '@mandate/vault/testing';
import { KeyRing } from '@mandate/crypto';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsCluster, type ClusterNode, type NatsCluster } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, root, spawnNode } from './processes.js';

const vaultEntry = join(root, 'apps', 'vault', 'dist', 'main.js');

/*
 * The production shape under faults: the three nodes of deploy/nats/cluster, JetStream streams
 * and KV buckets at replicas 3 (MANDATE_MODE=production), the directory, authorizer, vault and
 * audit service connected with every node's URL. Under a steady load of credential releases (each
 * waits for its audit record's acknowledgement) and of audit records published with their ids
 * kept once acknowledged, nodes are SIGKILLed. What must hold: with one node gone, requests keep
 * succeeding after a short `unavailable` window that clients retry; with two gone, writes answer
 * `unavailable`, never a false success; brought back, the nodes catch up; and every acknowledged
 * audit record is in its tenant's chain exactly once, the chains verifying.
 */
const missing = natsServerMissing('the three-node cluster under faults');
const TENANTS = ['cluster-a', 'cluster-b'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What production mode refuses to start without (`mandate keys master` and `mandate keys audit-signing` make them). */
function productionKeys(): Record<string, string> {
  const audit = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  return {
    MANDATE_MODE: 'production',
    MANDATE_MASTER_KEYS: JSON.stringify(KeyRing.generate().toJSON()),
    AUDIT_SIGNING_KEY: JSON.stringify({ current: { kty: 'OKP', crv: 'Ed25519', x: audit.x, d: audit.d }, retired: [] }),
  };
}

interface Outcome {
  at: number;
  /** From the first attempt to the answer, retries included. */
  tookMs: number;
  ok: boolean;
  code?: string;
  attempts: number;
}

describe.skipIf(missing)('a three-node NATS cluster under faults', { timeout: 300_000 }, () => {
  let cluster: NatsCluster;
  let h: TestSystem;
  let wat: string;
  let agentKey: JWK;
  let idp: TestIdp | undefined;
  const timings: string[] = [];

  beforeAll(async () => {
    const started = Date.now();
    cluster = await startNatsCluster();
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'audit'], natsUrl: cluster.url, env: productionKeys() });
    agentKey = await h.workload('report-agent');
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'weather', apiKey: 'cluster-test-key', allowedWorkloads: ['report-agent'] });
    wat = await h.machineWat('report-agent', agentKey);
    timings.push(`cluster and services up: ${Date.now() - started} ms`);
  }, 120_000);

  afterAll(async () => {
    console.log(`cluster tier timings:\n  ${timings.join('\n  ')}`);
    await h?.stop();
    await cluster?.stop();
    await idp?.stop();
  });

  /** The node that leads a stream now (its writes go there first). */
  /** The stream's leader; asked again for a while, since after an earlier fault the cluster may still be electing one. */
  async function leaderOf(stream: string, timeoutMs = 30_000): Promise<ClusterNode> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = await jetstreamManager(h.nc, { timeout: 5_000 })
        .then(async (jsm) => (await jsm.streams.info(stream)).cluster?.leader)
        .catch(() => undefined);
      if (leader) return cluster.node(leader);
      if (Date.now() > deadline) throw new Error(`${stream} has no leader`);
      await sleep(500);
    }
  }

  /** Until every replica of the stream is current again (a restarted node caught up). */
  async function caughtUp(stream: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await jetstreamManager(h.nc, { timeout: 5_000 })
        .then((jsm) => jsm.streams.info(stream))
        .catch(() => undefined);
      if (info?.cluster?.leader && info.cluster.replicas?.length === 2 && info.cluster.replicas.every((replica) => replica.current && !replica.offline)) return;
      if (Date.now() > deadline) throw new Error(`${stream} replicas not current within ${timeoutMs} ms: ${JSON.stringify(info?.cluster)}`);
      await sleep(250);
    }
  }

  /** Until every Mandate stream and KV bucket has a leader and current replicas: reads go to a bucket's leader. */
  async function allCaughtUp(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let names: string[] | undefined;
    while (!names) {
      names = await streamNames().catch((error: unknown) => {
        if (Date.now() > deadline) throw error;
        return undefined;
      });
      if (!names) await sleep(500);
    }
    for (const name of names) await caughtUp(name, timeoutMs);
  }

  async function streamNames(): Promise<string[]> {
    const jsm = await jetstreamManager(h.nc, { timeout: 5_000 });
    const names: string[] = [];
    for await (const info of jsm.streams.list()) if (/^(KV_mandate_|MANDATE_)/.test(info.config.name)) names.push(info.config.name);
    return names;
  }

  /**
   * Steady load: workers releasing the API key (retrying `unavailable` as clients do, up to
   * `retryForMs`) and workers publishing audit records (retrying the same id until acknowledged).
   */
  function load(options: { releases: number; publishers: number; retryForMs: number }) {
    const releases: Outcome[] = [];
    const acked = new Set<string>();
    const publishErrors = new Map<string, number>();
    let stopped = false;
    const release = async () => {
      while (!stopped) {
        const started = Date.now();
        // One key per release, the same on each retry: the release is audited once however often it is sent.
        const idempotencyKey = randomUUID();
        let attempts = 0;
        for (;;) {
          attempts += 1;
          try {
            await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'weather' }, { timeoutMs: 3_000, idempotencyKey });
            releases.push({ at: started, tookMs: Date.now() - started, ok: true, attempts });
            break;
          } catch (error) {
            const code = error instanceof MandateError ? error.code : 'internal';
            // A release in flight when the load stops still retries: a client does not give up because the test is done.
            if (code !== 'unavailable' || Date.now() - started > options.retryForMs) {
              releases.push({ at: started, tookMs: Date.now() - started, ok: false, code, attempts });
              break;
            }
            await sleep(200);
          }
        }
        await sleep(20);
      }
    };
    const publish = async (worker: number) => {
      const nc = await connectToBus({ servers: cluster.url, name: `cluster-load-${worker}` });
      const publisher = new JetStreamPublisher(nc);
      for (let n = 0; !stopped; n += 1) {
        const id = randomUUID();
        while (!stopped) {
          try {
            await publisher.audit({ id, tenant: TENANTS[(worker + n) % TENANTS.length]!, service: 'directory', action: 'workload-update', outcome: 'succeeded', actor: { admin: `cluster-load-${worker}` } });
            acked.add(id);
            break;
          } catch (error) {
            const text = error instanceof Error ? error.message.slice(0, 80) : 'unknown';
            publishErrors.set(text, (publishErrors.get(text) ?? 0) + 1);
            await sleep(100);
          }
        }
        await sleep(10);
      }
      await nc.close();
    };
    const workers = [...Array.from({ length: options.releases }, () => release()), ...Array.from({ length: options.publishers }, (_, i) => publish(i))];
    return {
      releases,
      acked,
      publishErrors,
      async stop() {
        stopped = true;
        await Promise.all(workers);
      },
    };
  }

  /** Every acknowledged id is in its tenant's chain exactly once, and each chain verifies. */
  async function expectChainedExactlyOnce(acked: ReadonlySet<string>): Promise<void> {
    const bus = new BusClient(h.nc, { defaultTimeoutMs: 30_000 });
    const deadline = Date.now() + 60_000;
    let ids: string[];
    for (;;) {
      ids = [];
      try {
        for (const tenant of TENANTS) {
          let cursor: string | undefined;
          do {
            const page = await bus.request(auditQueryEndpoint, { tenant, service: 'directory', limit: 500, ...(cursor ? { cursor } : {}) });
            ids.push(...page.entries.map((entry) => entry.record.id));
            cursor = page.nextCursor;
          } while (cursor);
        }
      } catch (error) {
        // Just after the faults a bucket may still be electing its leader (reads go to the leader): ask again.
        if (!(error instanceof MandateError && error.code === 'unavailable') || Date.now() > deadline) throw error;
        await sleep(500);
        continue;
      }
      const present = new Set(ids);
      if ([...acked].every((id) => present.has(id)) || Date.now() > deadline) break;
      await sleep(500);
    }
    const present = new Set(ids);
    expect(ids.length, 'no record chained twice').toBe(present.size);
    expect([...acked].filter((id) => !present.has(id)), 'acknowledged but not in the trail').toEqual([]);
    for (const tenant of TENANTS) expect(await bus.request(auditVerifyEndpoint, { tenant }), tenant).toMatchObject({ ok: true });
  }

  /** The longest a release took, retries included: the `unavailable` window a client sees. */
  function unavailableWindow(releases: readonly Outcome[]): number {
    return Math.max(0, ...releases.filter((r) => r.attempts > 1).map((r) => r.tookMs));
  }

  it('every replicated KV bucket answers reads from its leader, never from a replica still catching up', async () => {
    const jsm = await jetstreamManager(h.nc, { timeout: 5_000 });
    const buckets = [];
    for await (const info of jsm.streams.list()) {
      if (info.config.name.startsWith('KV_mandate_')) buckets.push({ name: info.config.name, replicas: info.config.num_replicas, direct: info.config.allow_direct });
    }
    expect(buckets.length).toBeGreaterThan(5);
    // A direct get may be answered by any replica: after a node's restart one that was behind made
    // a scheduler run's compare-and-swap lose against its own last write, leaving it `running`.
    expect(buckets.filter((bucket) => bucket.replicas !== 3 || bucket.direct !== false)).toEqual([]);
  });

  it('one node SIGKILLed under load: requests keep succeeding after a short window clients retry; it comes back and catches up; nothing acknowledged is lost or doubled', async () => {
    const releasesBefore = await releaseRecords();
    const traffic = load({ releases: 4, publishers: 4, retryForMs: 20_000 });
    await sleep(2_000);
    const victim = await leaderOf(AUDIT_STREAM.name);
    const killedAt = Date.now();
    await victim.kill();
    // Longer than JetStream's Raft election (seconds): the two others must carry on alone.
    await sleep(15_000);
    const beforeRestart = traffic.releases.filter((r) => r.at > killedAt + 1_000 && r.ok && r.at + r.tookMs < Date.now()).length;
    await victim.start();
    const restartedAt = Date.now();
    await caughtUp(AUDIT_STREAM.name);
    await allCaughtUp();
    timings.push(`one node down for ${restartedAt - killedAt} ms; caught up ${Date.now() - restartedAt} ms after its restart`);
    await sleep(2_000);
    await traffic.stop();

    const failed = traffic.releases.filter((r) => !r.ok);
    const recovered = traffic.releases.filter((r) => r.attempts > 1).map((r) => r.at + r.tookMs - killedAt);
    timings.push(`one node: retried releases answered ${recovered.map((ms) => `${ms} ms`).join(', ')} after the kill (the node restarted at ${restartedAt - killedAt} ms)`);
    timings.push(`one node: ${traffic.releases.length} releases (${traffic.releases.filter((r) => r.attempts > 1).length} retried, ${failed.length} failed), unavailable window ${unavailableWindow(traffic.releases)} ms; ${traffic.acked.size} audit records acknowledged`);
    expect(failed, 'every release succeeded, retries included').toEqual([]);
    expect(beforeRestart, 'releases succeeded while the node was down').toBeGreaterThan(20);
    expect(Math.max(...recovered), 'the unavailable window ended before the node came back').toBeLessThan(restartedAt - killedAt);
    expect(traffic.releases.filter((r) => r.at > killedAt + 12_000 && r.attempts > 1), 'no retries needed once the cluster settled').toEqual([]);
    expect(traffic.acked.size).toBeGreaterThan(100);
    await expectChainedExactlyOnce(traffic.acked);
    await expectOneRecordPerRelease(releasesBefore, traffic.releases.length);
    timings.push(`  failed attempts recorded as such: ${await trailCount({ tenant: 'acme', workload: 'report-agent', service: 'vault', action: 'api-key-release', outcome: 'failed' })} so far`);
  });

  it('a rolling restart, one node at a time under load: no release fails, each release is audited once, every acknowledged record is chained exactly once', async () => {
    const releasesBefore = await releaseRecords();
    const traffic = load({ releases: 4, publishers: 4, retryForMs: 20_000 });
    await sleep(1_000);
    const started = Date.now();
    for (const node of cluster.nodes) {
      await node.stop();
      await sleep(1_000);
      await node.start();
      await caughtUp(AUDIT_STREAM.name);
    }
    await allCaughtUp();
    timings.push(`rolling restart of three nodes: ${Date.now() - started} ms`);
    await sleep(1_000);
    await traffic.stop();
    const failed = traffic.releases.filter((r) => !r.ok);
    timings.push(`rolling restart: ${traffic.releases.length} releases (${traffic.releases.filter((r) => r.attempts > 1).length} retried, ${failed.length} failed), longest ${unavailableWindow(traffic.releases)} ms; ${traffic.acked.size} audit records acknowledged`);
    expect(failed, 'every release succeeded, retries included').toEqual([]);
    await expectChainedExactlyOnce(traffic.acked);
    await expectOneRecordPerRelease(releasesBefore, traffic.releases.length);
    timings.push(`  failed attempts recorded as such: ${await trailCount({ tenant: 'acme', workload: 'report-agent', service: 'vault', action: 'api-key-release', outcome: 'failed' })} so far`);
  });

  it('two nodes SIGKILLed: writes answer unavailable, never a false success; brought back, everything catches up and nothing acknowledged is lost', async () => {
    const traffic = load({ releases: 0, publishers: 4, retryForMs: 0 });
    await sleep(1_000);
    const [first, second] = cluster.nodes.filter((node) => node.running()).slice(0, 2) as [ClusterNode, ClusterNode];
    await Promise.all([first.kill(), second.kill()]);
    const downAt = Date.now();
    // Let the publishers see the outage; whatever was acknowledged before it must survive.
    await sleep(3_000);
    const refusals: string[] = [];
    for (let i = 0; i < 5; i++) {
      const outcome = await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'weather' }, { timeoutMs: 3_000 }).then(
        () => 'released',
        (error: unknown) => (error instanceof MandateError ? error.code : 'internal'),
      );
      refusals.push(outcome);
    }
    await sleep(1_000);
    expect(refusals, 'no credential leaves without its acknowledged audit record').toEqual(Array(5).fill('unavailable'));
    const frozen = traffic.acked.size;
    await sleep(2_000);
    expect(traffic.acked.size, 'no audit record acknowledged by one node of three').toBe(frozen);

    await Promise.all([first.start(), second.start()]);
    const backAt = Date.now();
    await caughtUp(AUDIT_STREAM.name);
    timings.push(`two nodes down for ${backAt - downAt} ms; the audit stream caught up ${Date.now() - backAt} ms after their restart`);
    await allCaughtUp();
    timings.push(`two nodes: every stream and bucket current ${Date.now() - backAt} ms after their restart`);
    expect(await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'weather' }, { timeoutMs: 10_000 })).toEqual({ apiKey: 'cluster-test-key' });
    // Publishers waiting out their last timeout get through again.
    await expect.poll(() => traffic.acked.size, { timeout: 30_000 }).toBeGreaterThan(frozen + 20);
    await traffic.stop();
    timings.push(`two nodes: publish failures while down ${JSON.stringify([...traffic.publishErrors])}`);
    timings.push(`two nodes: ${traffic.acked.size} audit records acknowledged in all, ${frozen} before and during the outage`);
    await expectChainedExactlyOnce(traffic.acked);
  });

  it('two scheduler replicas, the node leading their runs SIGKILLed mid-schedule: every minute fires exactly once, each effect applied once', async () => {
    const jobsIdp = await startTestIdp();
    const resource = await startTestResource();
    try {
      await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'reporting-jobs', vendor: 'custom', discoveryUrl: jobsIdp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['report-agent'] });
      const start = Date.parse('2025-06-11T17:00:00Z');
      let clock = start;
      const replicas = [await addScheduler(h, { now: () => clock }), await addScheduler(h, { now: () => clock })];
      await h.bus.request(jobCreateEndpoint, {
        tenant: 'acme',
        workload: { name: 'report-agent', privateJwk: agentKey as never },
        name: 'cluster-minute',
        trigger: { kind: 'cron', expression: '* * * * *', timeZone: 'UTC' },
        action: { kind: 'http', method: 'POST', url: `${resource.url}/minute`, provider: 'reporting-jobs' },
        retry: { limit: 20, backoffMs: 1_000, maxBackoffMs: 5_000 },
      });
      const runs = async (): Promise<RunView[]> => {
        const all: RunView[] = [];
        let cursor: string | undefined;
        do {
          const page = await h.bus.request(jobRunsEndpoint, { tenant: 'acme', name: 'cluster-minute', limit: 100, ...(cursor ? { cursor } : {}) }, { timeoutMs: 5_000 });
          all.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor);
        return all;
      };
      /** Both replicas tick at `now` (racing, as their timers do) until the store has the minute's run: a tick that cannot reach the store fires nothing, and tries again. */
      const tickUntilFired = async (now: number) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          await Promise.all(replicas.map(({ app }) => app.scheduler.tick(now).catch(() => undefined)));
          const fired = await runs().then((all) => all.some((run) => Date.parse(run.scheduledFor) === now - 100), () => false);
          if (fired) return;
          if (Date.now() > deadline) throw new Error(`the fire of ${new Date(now - 100).toISOString()} did not happen within 60 s`);
          await sleep(250);
        }
      };
      const MINUTES = 12;
      const victim = await leaderOf('KV_mandate_scheduler_runs');
      const started = Date.now();
      let restarted: Promise<void> | undefined;
      for (let minute = 1; minute <= MINUTES; minute++) {
        if (minute === 3) await victim.kill();
        if (minute === 8) restarted = victim.start();
        clock = start + minute * 60_000 + 100;
        await tickUntilFired(clock);
      }
      await restarted;
      // Attempts that failed while the node was down retry (1-5 s backoff): tick within the last minute until every run is final.
      const deadline = Date.now() + 60_000;
      let final: RunView[] = [];
      for (let second = 1; ; second++) {
        clock = start + MINUTES * 60_000 + 100 + Math.min(second, 59) * 1_000;
        await Promise.all(replicas.map(({ app }) => app.scheduler.tick(clock).catch(() => undefined)));
        final = await runs().catch(() => []);
        if ((final.length === MINUTES && final.every((run) => run.state === 'succeeded')) || Date.now() > deadline) break;
        await sleep(200);
      }
      timings.push(`scheduler: ${MINUTES} fires on two replicas through a node's death and return in ${Date.now() - started} ms`);
      const expected = Array.from({ length: MINUTES }, (_, i) => new Date(start + (i + 1) * 60_000).toISOString());
      expect(final.map((run) => run.scheduledFor).sort(), `one run per minute, none twice: ${JSON.stringify(final.map((run) => [run.scheduledFor, run.state, run.attempts]))}`).toEqual(expected);
      expect(final.filter((run) => run.state !== 'succeeded'), 'every run succeeded').toEqual([]);
      const effects = [...resource.effects].filter((effect) => effect.startsWith('/minute '));
      expect(effects, 'each fire applied once at the resource').toHaveLength(MINUTES);
      expect(new Set(resource.requests.filter((r) => r.path === '/minute').map((r) => r.idempotencyKey)).size).toBe(MINUTES);
    } finally {
      await jobsIdp.stop();
      await resource.stop();
    }
  });

  it('a vault replica SIGKILLed with releases in flight: the SDK retries each with its idempotency key, and every release gets one token and one audit record', async () => {
    assertBuilt(vaultEntry);
    await allCaughtUp();
    const replicaIdp = await startTestIdp();
    const key = await h.workload('replica-agent');
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'replica-weather', apiKey: 'replica-weather-key', allowedWorkloads: ['replica-agent'] });
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'replica-reporting', vendor: 'custom', discoveryUrl: replicaIdp.discoveryUrl, clientId: 'm2m-client', clientSecret: 'm2m-client-secret', allowedWorkloads: ['replica-agent'] });
    // The in-process vault and a second replica in a process of its own, sharing the queue group.
    const replica = spawnNode(vaultEntry, [], { ...h.env, LOG_LEVEL: 'info' });
    const agents: MandateClient[] = [];
    try {
      await replica.waitFor('service listening');
      // The request subjects seen from outside: every attempt, with the key it carried.
      const attempts = new Map<string, number>();
      const spy = h.nc.subscribe('mandate.vault.v1.>', {
        callback: (_error, msg) => {
          const idempotencyKey = msg.headers?.get(REQUEST_HEADERS.idempotencyKey);
          if (idempotencyKey) attempts.set(idempotencyKey, (attempts.get(idempotencyKey) ?? 0) + 1);
        },
      });
      await h.nc.flush();
      const released = { apiKeys: new Set<string>(), tokens: new Set<string>(), apiKeyCount: 0, tokenCount: 0, failures: [] as string[] };
      let stopped = false;
      const work = async (worker: number) => {
        const agent = await MandateClient.connect({ servers: cluster.url, tenant: 'acme', workload: 'replica-agent', requestTimeoutMs: 2_000, retry: { forMs: 20_000, firstDelayMs: 100 } });
        agents.push(agent);
        const wat = await agent.workloadToken({ privateJwk: key });
        while (!stopped) {
          try {
            if (worker % 2 === 0) {
              released.apiKeys.add(await agent.apiKey({ workloadToken: wat, provider: 'replica-weather' }));
              released.apiKeyCount += 1;
            } else {
              released.tokens.add((await agent.oauth2Token({ workloadToken: wat, provider: 'replica-reporting', flow: 'M2M' })).accessToken);
              released.tokenCount += 1;
            }
          } catch (error) {
            released.failures.push(error instanceof MandateError ? error.code : String(error));
          }
        }
      };
      const workers = Array.from({ length: 16 }, (_, worker) => work(worker));
      await sleep(2_000);
      replica.child.kill('SIGKILL');
      const killedAt = Date.now();
      await sleep(4_000);
      stopped = true;
      await Promise.all(workers);
      spy.unsubscribe();
      const retried = [...attempts.values()].filter((n) => n > 1).length;
      timings.push(`vault replica SIGKILL: ${released.apiKeyCount} API keys and ${released.tokenCount} tokens released, ${retried} releases retried with their key, ${released.failures.length} failed; the load ran ${Date.now() - killedAt} ms past the kill`);

      expect(released.failures, 'every release succeeded, retries included').toEqual([]);
      expect(retried, 'some releases were in flight at the killed replica and retried').toBeGreaterThan(0);
      expect([...released.apiKeys]).toEqual(['replica-weather-key']);
      expect(released.tokens.size, 'one M2M token for every caller').toBe(1);
      expect(replicaIdp.tokenRequests.filter((r) => r.grantType === 'client_credentials' && r.status === 200)).toHaveLength(1);
      // One record per release: a retry after the replica had its record acknowledged is the same record.
      const expected = { 'api-key-release': released.apiKeyCount, 'token-release': released.tokenCount };
      let counted: Record<string, number> = {};
      const deadline = Date.now() + 30_000;
      for (;;) {
        counted = {};
        for (const action of Object.keys(expected)) counted[action] = await trailCount({ tenant: 'acme', workload: 'replica-agent', service: 'vault', action, outcome: 'succeeded' });
        if (JSON.stringify(counted) === JSON.stringify(expected) || Date.now() > deadline) break;
        await sleep(500);
      }
      expect(counted, 'one audit record per release, none twice').toEqual(expected);
      expect(await h.bus.request(auditVerifyEndpoint, { tenant: 'acme' })).toMatchObject({ ok: true });
    } finally {
      if (replica.child.exitCode === null) replica.child.kill('SIGKILL');
      await Promise.all(agents.map((agent) => agent.close()));
      await replicaIdp.stop();
    }
  });

  /** The trail holds one record per release of the steady load; if not in time, says where the intake stands (what is still delivered and not acknowledged). */
  async function expectOneRecordPerRelease(before: number, releases: number): Promise<void> {
    try {
      await expect.poll(async () => (await releaseRecords()) - before, { timeout: 30_000, message: 'one audit record per release, retried or not' }).toBe(releases);
    } catch (error) {
      const info = await jetstreamManager(h.nc, { timeout: 5_000 }).then((jsm) => jsm.consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER)).catch((e: unknown) => String(e));
      const state = typeof info === 'string' ? info : { num_pending: info.num_pending, num_ack_pending: info.num_ack_pending, num_redelivered: info.num_redelivered, num_waiting: info.num_waiting, delivered: info.delivered, ack_floor: info.ack_floor };
      console.log(`the audit intake consumer when the release records fell short: ${JSON.stringify(state)}`);
      throw error;
    }
  }

  /**
   * The API keys released to the steady load's workload, as the trail records them. (An attempt
   * that failed, its audit publish unacknowledged, also left a `failed` record where it could:
   * a record of that attempt, not of a release.)
   */
  function releaseRecords(): Promise<number> {
    return trailCount({ tenant: 'acme', workload: 'report-agent', service: 'vault', action: 'api-key-release', outcome: 'succeeded' });
  }

  /** An access token, asked for again after `unavailable` (a timed-out request is that too) for up to 45 s, as a client would. */
  async function tokenRetrying(request: RequestOf<typeof oauth2TokenEndpoint>): Promise<string> {
    const started = Date.now();
    for (;;) {
      try {
        return (await h.bus.request(oauth2TokenEndpoint, request, { timeoutMs: 5_000 })).accessToken;
      } catch (error) {
        if (!(error instanceof MandateError) || error.code !== 'unavailable' || Date.now() - started > 45_000) throw error;
        await sleep(200);
      }
    }
  }

  /** How many records of the trail match the filter (every page read). */
  async function trailCount(filter: { tenant: string; workload: string; service: string; action: string; outcome?: 'succeeded' | 'failed' }): Promise<number> {
    const bus = new BusClient(h.nc, { defaultTimeoutMs: 30_000 });
    let count = 0;
    let cursor: string | undefined;
    do {
      const page = await bus.request(auditQueryEndpoint, { ...filter, limit: 500, ...(cursor ? { cursor } : {}) });
      count += page.entries.length;
      cursor = page.nextCursor;
    } while (cursor);
    return count;
  }

  // Found by this test under the whole suite's load: a token fetched while the cache's store had no
  // leader could not be stored, the caller's retry fetched another (49 upstream requests in one run).
  // A fetched token is now served at once and stored in the background under the lease.
  it('a token storm on two vault replicas while the node leading the token cache dies: one upstream request, one token, every caller served', async () => {
    await allCaughtUp();
    idp = await startTestIdp({ accessTokenTtlSeconds: 60 });
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'reporting', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'm2m-client', clientSecret: 'm2m-client-secret', allowedWorkloads: ['report-agent'] });
    await h.add('vault');
    const ask = () => tokenRetrying({ tenant: 'acme', workloadToken: wat, provider: 'reporting', flow: 'M2M', scopes: [], forceAuthentication: false });
    const victim = await leaderOf('KV_mandate_machine_tokens');
    await victim.kill();
    const started = Date.now();
    const tokens = new Set(await Promise.all(Array.from({ length: 300 }, ask)));
    timings.push(`token storm: 300 callers served in ${Date.now() - started} ms with the cache's leader down`);
    await victim.start();
    expect(idp.tokenRequests.filter((r) => r.grantType === 'client_credentials' && r.status === 200)).toHaveLength(1);
    expect(tokens.size).toBe(1);
  });

  // A user token refreshed while the node leading the refresh leases dies: the refresh rotates the
  // refresh token at the provider, so an answer the vault cannot keep costs the person a consent.
  it('a refresh storm on two vault replicas while the node leading the refresh leases dies: one upstream refresh, one token, every caller served', async () => {
    await allCaughtUp();
    const crmIdp = await startTestIdp();
    try {
      if ((h.replicas.vault?.length ?? 0) < 2) await h.add('vault');
      const crmKey = await h.workload('crm-agent', { allowUserIdTokens: true });
      await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'crm', vendor: 'custom', discoveryUrl: crmIdp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['crm-agent'] });
      const seed = await VaultSeed.open(h);
      const scopes = ['crm:read'];
      const { wat, user } = await h.userWat('crm-agent', crmKey, 'storm-user');
      const first = await crmIdp.userTokens({ sub: 'storm-user', audience: 'https://crm.acme.example', scope: scopes.join(' ') });
      await seed.userTokens('acme', 'crm', user, scopes, { accessToken: first.accessToken, refreshToken: first.refreshToken, expiresIn: 0 });
      await seed.grant('acme', { workload: 'crm-agent', provider: 'crm', user, scopes });
      const ask = () => tokenRetrying({ tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes, forceAuthentication: false });
      const victim = await leaderOf('KV_mandate_refresh_leases');
      await victim.kill();
      const started = Date.now();
      const tokens = new Set(await Promise.all(Array.from({ length: 300 }, ask)));
      timings.push(`refresh storm: 300 callers served in ${Date.now() - started} ms with the refresh leases' leader down`);
      await victim.start();
      const refreshes = crmIdp.tokenRequests.filter((r) => r.grantType === 'refresh_token');
      expect(refreshes.map((r) => r.status), 'one upstream refresh').toEqual([200]);
      expect(tokens.size, 'one token for every caller').toBe(1);
      expect([...tokens][0]).not.toBe(first.accessToken);
      // The rotated refresh token was kept: the next refresh works, no consent needed.
      const stored = await new JetStreamKvStore(h.nc, { replicas: 3 }).collection<{ user: { sub: string }; expiresAt?: number }>('user-tokens');
      for (const item of (await stored.list('acme' as never, { limit: 100 })).items) {
        if (item.value.user.sub === 'storm-user') await stored.update('acme' as never, item.id, { ...item.value, expiresAt: Date.now() - 1_000 }, item.revision);
      }
      const next = await ask();
      expect(next).not.toBe([...tokens][0]);
      expect(crmIdp.tokenRequests.filter((r) => r.grantType === 'refresh_token').map((r) => r.status), 'the second refresh used the rotated refresh token').toEqual([200, 200]);
    } finally {
      await crmIdp.stop();
    }
  });
});
