import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { BusClient, JetStreamPublisher, runService, type RunningService } from '@mandate/bus';
import { baseEnvSchema } from '@mandate/config';
import { JetStreamKvStore } from '@mandate/store';
import {
  apiKeyEndpoint,
  authorizerSetEndpoint,
  AUDIT_CONSUMER,
  AUDIT_DLQ_STREAM,
  AUDIT_STREAM,
  AUDIT_TRAIL_STREAM,
  trailEntriesSubject,
  auditQueryEndpoint,
  codeExchangeEndpoint,
  echoEndpoint,
  gatewayCreateEndpoint,
  gatewayDeleteEndpoint,
  gatewayEndpoints,
  grantListEndpoint,
  grantRevokeEndpoint,
  jobCreateEndpoint,
  TRIGGERS_STREAM,
  type TaskMessage,
  providerCreateEndpoint,
  providerDeleteEndpoint,
  providerGetEndpoint,
  signingKeysRotateEndpoint,
  targetAddEndpoint,
  tokenForWorkloadEndpoint,
  consentSessionFailEndpoint,
  consentSessionGetEndpoint,
  grantCheckEndpoint,
  providerAuthorizationEndpoint,
  tenantId,
  workloadCreateEndpoint,
} from '@mandate/contracts';
import { vaultEnvSchema, vaultService } from '@mandate/vault/module';
import { exportJWK, generateKeyPair } from 'jose';
import { signClientAssertion } from '@mandate/wat';
import { authorizerEnvSchema, authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { auditEnvSchema, auditService } from '@mandate/audit/module';
import { createLogger } from '@mandate/telemetry';
import { findNatsServer, freePort, natsServerMissing, natsServerVersion, skipReason } from '@mandate/testing';
import { diagnosticsService } from '@mandate/diagnostics/module';
import { consentEnvSchema, consentService } from '@mandate/consent/module';
import { schedulerEnvSchema, schedulerService } from '@mandate/scheduler/module';
import { consumeTasks, MandateClient, type TaskConsumer } from '@mandate/sdk';
import { gatewayEnvSchema, gatewayService } from '@mandate/gateway/module';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { root } from './processes.js';

const missing = natsServerMissing('deploy/nats configs');
/** One master key for every service of the deployment, as in production: they share one nats-server's stored keys. */
const masterKeys = JSON.stringify({ primary: 'k1', keys: { k1: randomBytes(32).toString('base64') } });
const passwords = {
  DIAGNOSTICS_NATS_PASSWORD: 'diag-pw-1',
  ADMIN_NATS_PASSWORD: 'admin-pw-2',
  AGENT_NATS_PASSWORD: 'agent-pw-3',
  NATS_ROUTE_PASSWORD: 'route-pw-4',
  DIRECTORY_NATS_PASSWORD: 'dir-pw-5',
  AUTHORIZER_NATS_PASSWORD: 'authz-pw-6',
  VAULT_NATS_PASSWORD: 'vault-pw-7',
  SCHEDULER_NATS_PASSWORD: 'scheduler-pw-9',
  AUDIT_NATS_PASSWORD: 'audit-pw-8',
  CONSENT_NATS_PASSWORD: 'consent-pw-10',
  GATEWAY_NATS_PASSWORD: 'gateway-pw-11',
  INTERCEPTOR_NATS_PASSWORD: 'interceptor-pw-12',
  POLICY_NATS_PASSWORD: 'policy-pw-13',
};

/** `sync_interval` needs nats-server 2.10+; Debian 12 ships 2.9, so the copy under test drops it there. */
function supportsSyncInterval(binary: string): boolean {
  const [major, minor] = (natsServerVersion(binary).match(/v(\d+)\.(\d+)/) ?? []).slice(1).map(Number);
  return (major ?? 0) > 2 || ((major ?? 0) === 2 && (minor ?? 0) >= 10);
}

async function copyConfigs(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-deploy-'));
  await cp(join(root, 'deploy', 'nats'), dir, { recursive: true });
  if (!supportsSyncInterval(findNatsServer()!)) {
    skipReason('sync_interval in deploy/nats', `${natsServerVersion(findNatsServer()!)} predates it; tested without that line`);
    for (const file of ['single-node.conf', 'cluster/nats-1.conf', 'cluster/nats-2.conf', 'cluster/nats-3.conf']) {
      const path = join(dir, file);
      await writeFile(path, (await readFile(path, 'utf8')).replace(/^\s*sync_interval:.*$/m, ''));
    }
  }
  return dir;
}

describe.skipIf(missing)('deploy/nats', () => {
  it.each(['single-node.conf', 'cluster/nats-1.conf', 'cluster/nats-2.conf', 'cluster/nats-3.conf'])('%s is a valid nats-server configuration', async (file) => {
    const dir = await copyConfigs();
    const result = spawnSync(findNatsServer()!, ['-c', join(dir, file), '-t'], { env: { ...process.env, ...passwords }, encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toContain('is valid');
    expect(result.status).toBe(0);
    await rm(dir, { recursive: true, force: true });
  });

  describe('single node with per-service users', () => {
    let dir: string;
    let url: string;
    let stopServer: () => Promise<void>;
    let service: RunningService | undefined;

    beforeAll(async () => {
      dir = await copyConfigs();
      const [port, http] = [await freePort(), await freePort()];
      const config = join(dir, 'single-node.conf');
      await writeFile(
        config,
        (await readFile(config, 'utf8'))
          .replace('listen: 127.0.0.1:4222', `listen: 127.0.0.1:${port}`)
          .replace('http: 127.0.0.1:8222', `http: 127.0.0.1:${http}`)
          .replace('store_dir: "./.mandate/jetstream"', `store_dir: "${join(dir, 'js')}"`),
      );
      const child = spawn(findNatsServer()!, ['-c', config], { env: { ...process.env, ...passwords }, stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      stopServer = async () => {
        child.kill('SIGTERM');
        await exited;
      };
      url = `nats://127.0.0.1:${port}`;
      for (let i = 0; i < 100; i += 1) {
        const probe = await connect({ servers: url, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, reconnect: false }).catch(() => undefined);
        if (probe) {
          await probe.close();
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('nats-server with deploy/nats/single-node.conf did not start');
    });

    afterAll(async () => {
      await service?.stop();
      await stopServer?.();
      await rm(dir, { recursive: true, force: true });
    });

    async function permissionError(nc: NatsConnection, subject: string): Promise<string | undefined> {
      const seen = (async () => {
        for await (const status of nc.status()) if (status.type === 'error') return String((status as { error?: unknown }).error);
        return undefined;
      })();
      nc.publish(subject, 'x');
      await nc.flush();
      return Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
    }

    async function subscriptionError(nc: NatsConnection, subject: string): Promise<string | undefined> {
      const seen = (async () => {
        for await (const status of nc.status()) if (status.type === 'error') return String((status as { error?: unknown }).error);
        return undefined;
      })();
      const subscription = nc.subscribe(subject);
      await nc.flush();
      const error = await Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
      subscription.unsubscribe();
      return error;
    }

    /** What a user gets reading a collection through the JetStream API: `unavailable` when its permissions stop it. */
    async function readOutcome(nc: NatsConnection, collection: string, id = 'anything'): Promise<string> {
      return new JetStreamKvStore(nc).collection(collection).then(
        async (c) => c.get(tenantId('acme'), id).then((found) => (found ? 'read' : 'absent'), (e: unknown) => String((e as { code?: string }).code)),
        (e: unknown) => String((e as { code?: string }).code),
      );
    }

    it('refuses a wrong password', async () => {
      await expect(connect({ servers: url, user: 'diagnostics', pass: 'wrong', reconnect: false })).rejects.toThrow(/Authorization/i);
    });

    it('runs the diagnostics service as its own user: streams declared, echo served', async () => {
      const env = baseEnvSchema.parse({ NATS_URL: url, NATS_USER: 'diagnostics', NATS_PASSWORD: passwords.DIAGNOSTICS_NATS_PASSWORD });
      service = await runService(diagnosticsService, env, { logger: createLogger('diagnostics', { level: 'silent' }) });
      const agent = await connect({ servers: url, user: 'agent', pass: passwords.AGENT_NATS_PASSWORD, inboxPrefix: '_INBOX_agent' });
      expect((await new BusClient(agent).request(echoEndpoint, { message: 'as agent' })).message).toBe('as agent');
      await agent.close();
      // It has no bucket of its own, so no store access at all.
      const asDiagnostics = await connect({ servers: url, user: 'diagnostics', pass: passwords.DIAGNOSTICS_NATS_PASSWORD, inboxPrefix: '_INBOX_diagnostics' });
      try {
        const outcome = await new JetStreamKvStore(asDiagnostics).collection('workloads').then(
          async (c) => c.get(tenantId('acme'), 'anything').then(() => 'read', (e: unknown) => (e as { code?: string }).code),
          (e: unknown) => (e as { code?: string }).code,
        );
        expect(outcome).toBe('unavailable');
      } finally {
        await asDiagnostics.close();
      }
    });

    it('runs the directory, authorizer and vault as their own users: a workload gets a WAT, then an API key', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'mandate-deploy-authz-'));
      const as = (user: string, password: string) =>
        authorizerEnvSchema.parse({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: password, MANDATE_DATA_DIR: dataDir, MANDATE_MASTER_KEYS: masterKeys, AUTHORIZER_HTTP_PORT: '0' });
      const silent = (name: string) => ({ logger: createLogger(name, { level: 'silent' }) });
      const directory = await runService(directoryService, as('directory', passwords.DIRECTORY_NATS_PASSWORD), silent('directory'));
      const authorizer = await runService(authorizerService, as('authorizer', passwords.AUTHORIZER_NATS_PASSWORD), silent('authorizer'));
      const vault = await runService(
        vaultService,
        vaultEnvSchema.parse({ NATS_URL: url, NATS_USER: 'vault', NATS_PASSWORD: passwords.VAULT_NATS_PASSWORD, MANDATE_DATA_DIR: dataDir, MANDATE_MASTER_KEYS: masterKeys }),
        silent('vault'),
      );
      const admin = await connect({ servers: url, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, inboxPrefix: '_INBOX_admin' });
      const agent = await connect({ servers: url, user: 'agent', pass: passwords.AGENT_NATS_PASSWORD, inboxPrefix: '_INBOX_agent' });
      try {
        const key = await generateKeyPair('ES256', { extractable: true });
        const publicJwk = { ...(await exportJWK(key.publicKey)), kid: 'k1' };
        await new BusClient(admin).request(workloadCreateEndpoint, { tenant: 'acme', name: 'deployed-agent', publicKeys: { keys: [publicJwk as never] } });
        const clientAssertion = await signClientAssertion({ workload: 'deployed-agent', privateJwk: { ...(await exportJWK(key.privateKey)), kid: 'k1' } });
        const wat = await new BusClient(agent).request(tokenForWorkloadEndpoint, { tenant: 'acme', workload: 'deployed-agent', clientAssertion });
        expect(wat.tokenType).toBe('wat+jwt');
        await new BusClient(admin).request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'search', apiKey: 'key-1', allowedWorkloads: ['deployed-agent'] });
        expect(await new BusClient(agent).request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat.token, provider: 'search' })).toEqual({ apiKey: 'key-1' });
        // Agents may not call the directory's admin API, nor record consent for themselves.
        expect(await permissionError(agent, workloadCreateEndpoint.subject)).toMatch(/permissions violation/i);
        expect(await permissionError(agent, 'mandate.vault.v1.grant-record')).toMatch(/permissions violation/i);
        // Nor the vault's internal consent endpoints, nor list or revoke anyone's grants.
        for (const subject of [codeExchangeEndpoint.subject, consentSessionGetEndpoint.subject, consentSessionFailEndpoint.subject, providerAuthorizationEndpoint.subject, grantCheckEndpoint.subject, grantRevokeEndpoint.subject, grantListEndpoint.subject]) {
          expect(await permissionError(agent, subject), subject).toMatch(/permissions violation/i);
        }
        // The consent service's own user may ask the vault about a session (here: there is none).
        const consentUser = await connect({ servers: url, user: 'consent', pass: passwords.CONSENT_NATS_PASSWORD, inboxPrefix: '_INBOX_consent' });
        try {
          const answer = await new BusClient(consentUser).request(consentSessionGetEndpoint, { tenant: 'acme', sessionId: 'x'.repeat(32) }).then(() => 'ok', (e: unknown) => (e as { code?: string }).code);
          expect(answer).toBe('not_found');
        } finally {
          await consentUser.close();
        }
        // The consent service itself, as its own user: it starts (its buckets, the streams) and answers
        // grant questions through the vault's internal endpoints.
        const consent = await runService(
          consentService,
          consentEnvSchema.parse({ NATS_URL: url, NATS_USER: 'consent', NATS_PASSWORD: passwords.CONSENT_NATS_PASSWORD, MANDATE_DATA_DIR: dataDir, CONSENT_HTTP_PORT: '0' }),
          silent('consent'),
        );
        try {
          expect(await new BusClient(admin).request(grantListEndpoint, { tenant: 'acme' })).toEqual({ items: [] });
        } finally {
          await consent.stop();
        }
        // The consent user's JetStream rights: its own buckets, every store operation; never another service's.
        const asConsent = await connect({ servers: url, user: 'consent', pass: passwords.CONSENT_NATS_PASSWORD, inboxPrefix: '_INBOX_consent' });
        try {
          const store = new JetStreamKvStore(asConsent);
          for (const name of ['consent-flows', 'consent-login-trips', 'consent-signed-in']) {
            const collection = await store.collection<{ n: number }>(name);
            const created = await collection.create(tenantId('acme'), 'k1', { n: 1 }, { ttlMs: 60_000 });
            await collection.update(tenantId('acme'), 'k1', { n: 2 }, created.revision);
            expect((await collection.get(tenantId('acme'), 'k1'))?.value).toEqual({ n: 2 });
            expect((await collection.list(tenantId('acme'))).items.map((i) => i.id)).toEqual(['k1']);
            expect(await collection.delete(tenantId('acme'), 'k1')).toBe(true);
            await collection.sweepExpired();
          }
          const grants = await new JetStreamKvStore(asConsent).collection('grants').then(
            async (c) => c.get(tenantId('acme'), 'anything').then(() => 'read', (e: unknown) => (e as { code?: string }).code),
            (e: unknown) => (e as { code?: string }).code,
          );
          expect(grants).toBe('unavailable');
        } finally {
          await asConsent.close();
        }
        // Nor may the vault read the directory's workloads, or the directory the vault's tokens, through the JetStream API.
        for (const [user, password, collection] of [
          ['vault', passwords.VAULT_NATS_PASSWORD, 'workloads'],
          ['directory', passwords.DIRECTORY_NATS_PASSWORD, 'user-tokens'],
        ] as const) {
          const nc = await connect({ servers: url, user, pass: password, inboxPrefix: `_INBOX_${user}` });
          try {
            const outcome = await new JetStreamKvStore(nc).collection(collection).then(
              async (c) => c.get(tenantId('acme'), 'anything').then(() => 'read', (e: unknown) => (e as { code?: string }).code),
              (e: unknown) => (e as { code?: string }).code,
            );
            expect(outcome, `${user} reading ${collection}`).toBe('unavailable');
          } finally {
            await nc.close();
          }
        }
      } finally {
        await agent.close();
        await admin.close();
        await vault.stop();
        await authorizer.stop();
        await directory.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('runs the audit service as its own user: a record another service publishes is chained, and operators can query it', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'mandate-deploy-audit-'));
      const audit = await runService(
        auditService,
        auditEnvSchema.parse({ NATS_URL: url, NATS_USER: 'audit', NATS_PASSWORD: passwords.AUDIT_NATS_PASSWORD, MANDATE_DATA_DIR: dataDir }),
        { logger: createLogger('audit', { level: 'silent' }) },
      );
      const diagnostics = await connect({ servers: url, user: 'diagnostics', pass: passwords.DIAGNOSTICS_NATS_PASSWORD, inboxPrefix: '_INBOX_diagnostics' });
      const admin = await connect({ servers: url, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, inboxPrefix: '_INBOX_admin' });
      try {
        const record = await new JetStreamPublisher(diagnostics).audit({ tenant: 'deployed', service: 'diagnostics', action: 'echo', outcome: 'succeeded', actor: { admin: 'ops' } });
        const query = () => new BusClient(admin).request(auditQueryEndpoint, { tenant: 'deployed', traceId: record.traceId });
        await expect.poll(async () => (await query()).entries.map((e) => e.record.id), { timeout: 10_000 }).toEqual([record.id]);
        // A poison record is dead-lettered: the audit user may declare and write the dead-letter stream.
        await jetstream(diagnostics).publish('mandate.audit.deployed.diagnostics.echo', 'not json');
        const jsm = await jetstreamManager(admin);
        await expect.poll(async () => (await jsm.streams.info(AUDIT_DLQ_STREAM.name).catch(() => undefined))?.state.messages ?? 0, { timeout: 10_000 }).toBe(1);

        const auditUser = await connect({ servers: url, user: 'audit', pass: passwords.AUDIT_NATS_PASSWORD, inboxPrefix: '_INBOX_audit' });
        try {
          // The audit service itself may not publish audit records.
          expect(await permissionError(auditUser, 'mandate.audit.deployed.audit-trail.forged')).toMatch(/permissions violation/i);
          // Its JetStream rights are its own buckets and its own consumer: it can neither read another
          // service's data, nor delete its consumer or purge the audit stream (what is not chained yet).
          const tokens = await new JetStreamKvStore(auditUser).collection('user-tokens').then(
            async (c) => c.get(tenantId('acme'), 'anything').then(() => 'read', (e: unknown) => (e as { code?: string }).code),
            (e: unknown) => (e as { code?: string }).code,
          );
          expect(tokens).toBe('unavailable');
          const kept = (await jsm.streams.info(AUDIT_STREAM.name)).state.messages;
          const asAudit = await jetstreamManager(auditUser, { timeout: 2_000 });
          await expect(asAudit.consumers.delete(AUDIT_STREAM.name, AUDIT_CONSUMER)).rejects.toThrow();
          await expect(asAudit.streams.purge(AUDIT_STREAM.name)).rejects.toThrow();
          await expect(asAudit.consumers.add(AUDIT_STREAM.name, { durable_name: 'snoop', ack_policy: AckPolicy.Explicit })).rejects.toThrow();
          expect((await jsm.consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER)).name).toBe(AUDIT_CONSUMER);
          expect((await jsm.streams.info(AUDIT_STREAM.name)).state.messages).toBe(kept);
          // The trail it wrote the record into: it cannot delete that stream, nor purge it (JetStream would refuse the purge anyway).
          const trail = (await jsm.streams.info(AUDIT_TRAIL_STREAM.name)).state.messages;
          expect(trail).toBeGreaterThan(0);
          await expect(asAudit.streams.delete(AUDIT_TRAIL_STREAM.name)).rejects.toThrow();
          await expect(asAudit.streams.purge(AUDIT_TRAIL_STREAM.name)).rejects.toThrow();
          // Nor give it an age limit, which would drop entries: the service creates the stream, never updates it.
          const { config } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
          await expect(asAudit.streams.update(AUDIT_TRAIL_STREAM.name, { ...config, max_age: 1_000_000_000 })).rejects.toThrow();
          // The operator's user administers every stream but this one: it cannot limit, delete or write to the trail either.
          await expect(jsm.streams.update(AUDIT_TRAIL_STREAM.name, { ...config, max_msgs_per_subject: 1 })).rejects.toThrow();
          await expect(jsm.streams.delete(AUDIT_TRAIL_STREAM.name)).rejects.toThrow();
          expect(await permissionError(admin, trailEntriesSubject('deployed'))).toMatch(/permissions violation/i);
          expect((await jsm.streams.info(AUDIT_TRAIL_STREAM.name)).state.messages).toBe(trail);
        } finally {
          await auditUser.close();
        }
      } finally {
        await admin.close();
        await diagnostics.close();
        await audit.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('runs the scheduler as its own user: an event trigger becomes a task the agent takes', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'mandate-deploy-scheduler-'));
      const silent = (name: string) => ({ logger: createLogger(name, { level: 'silent' }) });
      const env = (user: string, password: string) => ({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: password, MANDATE_DATA_DIR: dataDir, MANDATE_MASTER_KEYS: masterKeys });
      const directory = await runService(directoryService, authorizerEnvSchema.parse({ ...env('directory', passwords.DIRECTORY_NATS_PASSWORD), AUTHORIZER_HTTP_PORT: '0' }), silent('directory'));
      const authorizer = await runService(authorizerService, authorizerEnvSchema.parse({ ...env('authorizer', passwords.AUTHORIZER_NATS_PASSWORD), AUTHORIZER_HTTP_PORT: '0' }), silent('authorizer'));
      const scheduler = await runService(schedulerService, schedulerEnvSchema.parse({ ...env('scheduler', passwords.SCHEDULER_NATS_PASSWORD), SCHEDULER_TICK_MS: '0' }), silent('scheduler'));
      const admin = await connect({ servers: url, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, inboxPrefix: '_INBOX_admin' });
      const agent = await MandateClient.connect({ servers: url, user: 'agent', password: passwords.AGENT_NATS_PASSWORD, tenant: 'acme', workload: 'triage-agent' });
      let tasks: TaskConsumer | undefined;
      try {
        const key = await generateKeyPair('ES256', { extractable: true });
        const privateJwk = { ...(await exportJWK(key.privateKey)), kid: 'k1' };
        await new BusClient(admin).request(workloadCreateEndpoint, { tenant: 'acme', name: 'triage-agent', publicKeys: { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1' } as never] } });
        await new BusClient(admin).request(jobCreateEndpoint, {
          tenant: 'acme',
          name: 'triage',
          workload: { name: 'triage-agent', privateJwk: privateJwk as never },
          trigger: { kind: 'event', subject: 'tickets.high' },
          action: { kind: 'task', payload: { kind: 'triage' } },
        });
        const received: TaskMessage[] = [];
        tasks = await consumeTasks(agent, { job: 'triage' }, async (task) => void received.push(task));
        await jetstream(admin).publish('mandate.trigger.acme.tickets.high', JSON.stringify({ ticket: 7 }));
        await expect.poll(() => received.map((t) => t.payload), { timeout: 10_000 }).toEqual([{ kind: 'triage' }]);

        // Its JetStream rights end at its own buckets and the trigger consumers.
        const asScheduler = await connect({ servers: url, user: 'scheduler', pass: passwords.SCHEDULER_NATS_PASSWORD, inboxPrefix: '_INBOX_scheduler' });
        try {
          const workloads = await new JetStreamKvStore(asScheduler).collection('workloads').then(
            async (c) => c.get(tenantId('acme'), 'triage-agent').then(() => 'read', (e: unknown) => (e as { code?: string }).code),
            (e: unknown) => (e as { code?: string }).code,
          );
          expect(workloads).toBe('unavailable');
          const asSchedulerJsm = await jetstreamManager(asScheduler, { timeout: 2_000 });
          await expect(asSchedulerJsm.consumers.delete(AUDIT_STREAM.name, AUDIT_CONSUMER)).rejects.toThrow();
          await expect(asSchedulerJsm.streams.purge(TRIGGERS_STREAM.name)).rejects.toThrow();
        } finally {
          await asScheduler.close();
        }
      } finally {
        await tasks?.stop();
        await agent.close();
        await admin.close();
        await scheduler.stop();
        await authorizer.stop();
        await directory.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('runs the gateway as its own user: a gateway registered, its target called over MCP with the vault’s key and an interceptor’s leave', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'mandate-deploy-gateway-'));
      const silent = (name: string) => ({ logger: createLogger(name, { level: 'silent' }) });
      const env = (user: string, password: string) => ({ NATS_URL: url, NATS_USER: user, NATS_PASSWORD: password, MANDATE_DATA_DIR: dataDir, MANDATE_MASTER_KEYS: masterKeys });
      const gatewayPort = await freePort();
      const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
      const resource = `${gatewayUrl}/mcp/acme/deployed`;
      const directory = await runService(directoryService, authorizerEnvSchema.parse({ ...env('directory', passwords.DIRECTORY_NATS_PASSWORD), AUTHORIZER_HTTP_PORT: '0' }), silent('directory'));
      const authorizer = await runService(authorizerService, authorizerEnvSchema.parse({ ...env('authorizer', passwords.AUTHORIZER_NATS_PASSWORD), AUTHORIZER_HTTP_PORT: '0' }), silent('authorizer'));
      const vault = await runService(vaultService, vaultEnvSchema.parse(env('vault', passwords.VAULT_NATS_PASSWORD)), silent('vault'));
      const gateway = await runService(
        gatewayService,
        gatewayEnvSchema.parse({ ...env('gateway', passwords.GATEWAY_NATS_PASSWORD), GATEWAY_HTTP_PORT: String(gatewayPort), GATEWAY_PUBLIC_URL: gatewayUrl }),
        silent('gateway'),
      );
      const admin = await connect({ servers: url, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, inboxPrefix: '_INBOX_admin' });
      const agent = await connect({ servers: url, user: 'agent', pass: passwords.AGENT_NATS_PASSWORD, inboxPrefix: '_INBOX_agent' });
      const asGateway = await connect({ servers: url, user: 'gateway', pass: passwords.GATEWAY_NATS_PASSWORD, inboxPrefix: '_INBOX_gateway' });
      const interceptor = await connect({ servers: url, user: 'interceptor', pass: passwords.INTERCEPTOR_NATS_PASSWORD, inboxPrefix: '_INBOX_interceptor' });
      let idp: TestIdp | undefined;
      let tools: SampleToolServer | undefined;
      let client: Client | undefined;
      try {
        [idp, tools] = await Promise.all([startTestIdp(), startSampleToolServer()]);
        const bus = new BusClient(admin);
        const key = await generateKeyPair('ES256', { extractable: true });
        const privateJwk = { ...(await exportJWK(key.privateKey)), kid: 'k1' };
        await bus.request(workloadCreateEndpoint, { tenant: 'acme', name: 'deployed-gateway', publicKeys: { keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1' } as never] } });
        await bus.request(authorizerSetEndpoint, { tenant: 'acme', name: 'deployed-gateway', authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource], allowedScopes: ['crm.read'] } });
        await bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'deployed-tools', apiKey: 'deployed-key-1', allowedWorkloads: ['deployed-gateway'] });

        // An interceptor, as its own user, answers the gateway's request through allow_responses.
        const intercepted: unknown[] = [];
        interceptor.subscribe('mandate.interceptor.deployed-check', {
          callback: (_error, msg) => {
            intercepted.push(msg.json());
            msg.respond(JSON.stringify({ action: 'allow' }));
          },
        });
        await interceptor.flush();
        // What the gateway publishes: its audit records, and gateway-changed, which its own user may follow.
        const audited: string[] = [];
        admin.subscribe('mandate.audit.acme.gateway.>', { callback: (error, msg) => void (error ? audited.push(`error: ${String(error)}`) : audited.push(msg.subject.split('.').pop()!)) });
        const changed: string[] = [];
        asGateway.subscribe('mandate.evt.gateway.gateway-changed.*', { callback: (error, msg) => void (error ? changed.push(`error: ${String(error)}`) : changed.push(msg.subject)) });
        await Promise.all([admin.flush(), asGateway.flush()]);

        // gateway-create has the authorizer mint a WAT with the key (token-for-workload) and writes the gateway's own bucket.
        const created = await bus.request(gatewayCreateEndpoint, {
          tenant: 'acme',
          name: 'deployed',
          workload: { name: 'deployed-gateway', privateJwk: privateJwk as never },
          authorizationServers: [idp.issuer],
          scopesSupported: ['crm.read'],
          interceptors: [{ phase: 'request', subject: 'mandate.interceptor.deployed-check' }],
        });
        expect(created.resourceUrl).toBe(resource);
        // target-add discovers the tools with the vault's API key (api-key).
        const target = await bus.request(targetAddEndpoint, {
          tenant: 'acme',
          gateway: 'deployed',
          target: { name: 'sales-tools', source: { kind: 'mcp', url: tools.url }, credential: { kind: 'api-key', provider: 'deployed-tools' }, defaultScopes: ['crm.read'] },
        });
        expect(target.tools.map((t) => t.name)).toContain('crm_notes');

        // A user's token for the gateway: the authorizer checks it (authorize), the interceptor lets the call go, the target gets the vault's key.
        const token = await idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'crm.read' });
        client = new Client({ name: 'deploy-test', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('sales-tools___crm_notes');
        const result = await client.callTool({ name: 'sales-tools___crm_notes', arguments: { accountId: 'acc-1' } });
        expect(result.isError ?? false).toBe(false);
        expect(result.structuredContent).toEqual({ accountId: 'acc-1', notes: ['Renewal in March', 'Wants the analytics add-on'] });
        expect(tools.requests.filter((r) => r.method === 'tools/call').map((r) => r.authorization)).toEqual(['Bearer deployed-key-1']);
        expect(intercepted).toEqual([expect.objectContaining({ phase: 'request', tenant: 'acme', gateway: 'deployed', target: 'sales-tools', tool: 'crm_notes', arguments: { accountId: 'acc-1' } })]);
        expect(JSON.stringify(intercepted)).not.toContain(token);
        expect(JSON.stringify(intercepted)).not.toContain('deployed-key-1');
        await expect.poll(() => audited, { timeout: 5_000 }).toEqual(expect.arrayContaining(['gateway-create', 'target-add', 'tool-call']));
        // One event for the new gateway, one for its target.
        await expect.poll(() => changed, { timeout: 5_000 }).toEqual(['mandate.evt.gateway.gateway-changed.acme', 'mandate.evt.gateway.gateway-changed.acme']);

        // Agents reach gateways over MCP only: every NATS operation of the gateway is administration.
        for (const endpoint of gatewayEndpoints) expect(await permissionError(agent, endpoint.subject), endpoint.subject).toMatch(/permissions violation/i);
        // Nor may agent code read what interceptors are sent; and an interceptor publishes nothing but its answers.
        expect(await subscriptionError(agent, 'mandate.interceptor.>')).toMatch(/permissions violation/i);
        expect(await permissionError(interceptor, 'mandate.audit.acme.gateway.tool-call')).toMatch(/permissions violation/i);
        expect(await permissionError(interceptor, gatewayDeleteEndpoint.subject)).toMatch(/permissions violation/i);
        expect(await subscriptionError(interceptor, 'mandate.gateway.v1.>')).toMatch(/permissions violation/i);

        // The gateway user: none of the vault's, directory's or authorizer's administration, no other service's events, tasks or interceptor-less subjects.
        for (const subject of [
          providerCreateEndpoint.subject,
          providerGetEndpoint.subject,
          providerDeleteEndpoint.subject,
          grantListEndpoint.subject,
          workloadCreateEndpoint.subject,
          authorizerSetEndpoint.subject,
          signingKeysRotateEndpoint.subject,
          'mandate.evt.vault.provider-changed.acme',
          'mandate.task.acme.deployed',
          'mandate.directory.v1.workload-get',
        ]) {
          expect(await permissionError(asGateway, subject), subject).toMatch(/permissions violation/i);
        }
        // Its JetStream rights end at its own buckets: it reads its gateways, never the directory's or the vault's data.
        expect(await readOutcome(asGateway, 'gateways', 'deployed')).toBe('read');
        for (const collection of ['workloads', 'providers', 'user-tokens', 'machine-tokens', 'signing-keys']) {
          expect(await readOutcome(asGateway, collection), `gateway reading ${collection}`).toBe('unavailable');
        }
        // Nor may any other service read the gateways' sealed keys.
        for (const [user, password] of [
          ['vault', passwords.VAULT_NATS_PASSWORD],
          ['scheduler', passwords.SCHEDULER_NATS_PASSWORD],
        ] as const) {
          const nc = await connect({ servers: url, user, pass: password, inboxPrefix: `_INBOX_${user}` });
          try {
            expect(await readOutcome(nc, 'gateways', 'deployed'), `${user} reading gateways`).toBe('unavailable');
          } finally {
            await nc.close();
          }
        }
        const asGatewayJsm = await jetstreamManager(asGateway, { timeout: 2_000 });
        await expect(asGatewayJsm.streams.purge(AUDIT_STREAM.name)).rejects.toThrow();
        await expect(asGatewayJsm.streams.info('KV_mandate_workloads')).rejects.toThrow();

        expect(await bus.request(gatewayDeleteEndpoint, { tenant: 'acme', name: 'deployed' })).toEqual({ deleted: true });
      } finally {
        await client?.close().catch(() => undefined);
        await Promise.all([idp?.stop(), tools?.stop()]);
        await interceptor.close();
        await asGateway.close();
        await agent.close();
        await admin.close();
        await gateway.stop();
        await vault.stop();
        await authorizer.stop();
        await directory.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    }, 90_000);

    it('stops a service user from publishing another service’s events', async () => {
      const nc = await connect({ servers: url, user: 'diagnostics', pass: passwords.DIAGNOSTICS_NATS_PASSWORD, inboxPrefix: '_INBOX_diagnostics' });
      expect(await permissionError(nc, 'mandate.evt.vault.token-refreshed')).toMatch(/permissions violation/i);
      await nc.close();
    });

    it("keeps every user's replies to itself: agent code cannot subscribe to another user's inbox", async () => {
      const nc = await connect({ servers: url, user: 'agent', pass: passwords.AGENT_NATS_PASSWORD, inboxPrefix: '_INBOX_agent' });
      for (const inbox of ['_INBOX.>', '_INBOX_vault.>', '_INBOX_consent.abc']) {
        const violation = (async () => {
          for await (const status of nc.status()) if (status.type === 'error') return String((status as { error?: unknown }).error);
          return undefined;
        })();
        nc.subscribe(inbox);
        await nc.flush();
        expect(await Promise.race([violation, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]), inbox).toMatch(/permissions violation/i);
      }
      // Its own inbox works: a request through it gets its answer.
      expect((await new BusClient(nc).request(echoEndpoint, { message: 'own inbox' })).message).toBe('own inbox');
      await nc.close();
    });

    it('stops agent code from writing audit records', async () => {
      const nc = await connect({ servers: url, user: 'agent', pass: passwords.AGENT_NATS_PASSWORD, inboxPrefix: '_INBOX_agent' });
      expect(await permissionError(nc, 'mandate.audit.acme.vault.token-released')).toMatch(/permissions violation/i);
      // Nor into the trail itself.
      expect(await permissionError(nc, trailEntriesSubject('acme'))).toMatch(/permissions violation/i);
      await nc.close();
    });
  });
});
