import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { approvalConsumeEndpoint, approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint, approvalRequestEndpoint, approvalStatusEndpoint, authorizeEndpoint, gatewayGetEndpoint, tenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { findNatsServer, freePort, natsServerMissing } from '@mandate/testing';
import { ApprovalRecords } from '../apps/policy/src/store/approval-records.js';
import { root } from './processes.js';

const missing = natsServerMissing('deploy/nats permissions of approvals');
const passwords: Record<string, string> = Object.fromEntries(
  ['DIAGNOSTICS', 'ADMIN', 'AGENT', 'DIRECTORY', 'AUTHORIZER', 'VAULT', 'SCHEDULER', 'AUDIT', 'CONSENT', 'GATEWAY', 'INTERCEPTOR', 'POLICY', 'NATS_ROUTE'].map((user, i) => [
    user === 'NATS_ROUTE' ? 'NATS_ROUTE_PASSWORD' : `${user}_NATS_PASSWORD`,
    `${user.toLowerCase()}-pw-${i}`,
  ]),
);

/*
 * What deploy/nats/permissions.conf lets each user do with approvals: the gateway opens and uses
 * them (request, consume) and follows decisions; the consent service reads and decides them;
 * the policy service keeps them and checks an approver's token; agent code only waits for a decision.
 */
describe.skipIf(missing)('approvals under deploy/nats per-service users', () => {
  let dir: string;
  let url: string;
  let stopServer: () => Promise<void>;
  const connections: NatsConnection[] = [];
  const as = async (user: string) => {
    const nc = await connect({ servers: url, user, pass: passwords[`${user.toUpperCase()}_NATS_PASSWORD`]!, inboxPrefix: `_INBOX_${user}`, reconnect: false });
    connections.push(nc);
    return nc;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mandate-approval-permissions-'));
    await cp(join(root, 'deploy', 'nats'), join(dir, 'nats'), { recursive: true });
    const [port, http] = [await freePort(), await freePort()];
    const config = join(dir, 'nats', 'single-node.conf');
    await writeFile(
      config,
      (await readFile(config, 'utf8'))
        .replace('listen: 127.0.0.1:4222', `listen: 127.0.0.1:${port}`)
        .replace('http: 127.0.0.1:8222', `http: 127.0.0.1:${http}`)
        .replace('store_dir: "./.mandate/jetstream"', `store_dir: "${join(dir, 'js')}"`)
        // Needs nats-server 2.10+; what it does is no part of these permissions.
        .replace(/^\s*sync_interval:.*$/m, ''),
    );
    const child = spawn(findNatsServer()!, ['-c', config], { env: { ...process.env, ...passwords }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    stopServer = async () => {
      child.kill('SIGTERM');
      await exited;
    };
    url = `nats://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i += 1) {
      const probe = await connect({ servers: url, user: 'admin', pass: passwords['ADMIN_NATS_PASSWORD']!, reconnect: false }).catch(() => undefined);
      if (probe) return void (await probe.close());
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('nats-server with deploy/nats/single-node.conf did not start');
  }, 30_000);

  afterAll(async () => {
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    await stopServer?.();
    await rm(dir, { recursive: true, force: true });
  });

  async function permissionError(nc: NatsConnection, act: () => void): Promise<string | undefined> {
    const seen = (async () => {
      for await (const status of nc.status()) if (status.type === 'error') return String((status as { error?: unknown }).error);
      return undefined;
    })();
    act();
    await nc.flush();
    return Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
  }
  const publishes = async (user: string, subject: string) => {
    const nc = await as(user);
    return permissionError(nc, () => nc.publish(subject, '{}'));
  };

  it('lets the gateway request and consume approvals, and follow their decisions, but never decide or read them', async () => {
    expect(await publishes('gateway', approvalRequestEndpoint.subject)).toBeUndefined();
    expect(await publishes('gateway', approvalConsumeEndpoint.subject)).toBeUndefined();
    for (const endpoint of [approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint]) expect(await publishes('gateway', endpoint.subject), endpoint.subject).toMatch(/permissions violation/i);
    const gateway = await as('gateway');
    expect(await permissionError(gateway, () => void gateway.subscribe('mandate.evt.policy.approval-decided.*'))).toBeUndefined();
  });

  it('lets the consent service read and decide approvals, never open or consume them; agent code only waits for one', async () => {
    for (const endpoint of [approvalGetEndpoint, approvalListEndpoint, approvalDecideEndpoint]) expect(await publishes('consent', endpoint.subject), endpoint.subject).toBeUndefined();
    for (const endpoint of [approvalRequestEndpoint, approvalConsumeEndpoint]) expect(await publishes('consent', endpoint.subject), endpoint.subject).toMatch(/permissions violation/i);
    for (const endpoint of [approvalRequestEndpoint, approvalConsumeEndpoint, approvalDecideEndpoint]) expect(await publishes('agent', endpoint.subject), endpoint.subject).toMatch(/permissions violation/i);
    // waitForApproval: the agent re-checks the state by id and follows decisions; what an approval binds (arguments, user) it may not read.
    expect(await publishes('agent', approvalStatusEndpoint.subject)).toBeUndefined();
    for (const endpoint of [approvalGetEndpoint, approvalListEndpoint]) expect(await publishes('agent', endpoint.subject), endpoint.subject).toMatch(/permissions violation/i);
    const agent = await as('agent');
    expect(await permissionError(agent, () => void agent.subscribe('mandate.evt.policy.approval-decided.acme'))).toBeUndefined();
  });

  it("lets the policy service keep approvals in its own buckets and check an approver's token; no other service opens them", async () => {
    expect(await publishes('policy', gatewayGetEndpoint.subject)).toBeUndefined();
    expect(await publishes('policy', authorizeEndpoint.subject)).toBeUndefined();
    const records = await ApprovalRecords.open(new JetStreamKvStore(await as('policy')));
    expect(await records.digestIndex(tenantId('acme'), 'some-digest')).toBeUndefined();
    await expect(ApprovalRecords.open(new JetStreamKvStore(await as('gateway')))).rejects.toThrow();
  });
});
