import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { decisionSealId, decisionSubject, policyExplainEndpoint, policyReplayEndpoint, tenantId, type DecisionEntry } from '@mandate/contracts';
import { EnvelopeCipher, loadDecisionLogKeys } from '@mandate/crypto';
import { findNatsServer, freePort, natsServerMissing } from '@mandate/testing';
import { DecisionLogStream } from '../apps/gateway/src/store/decision-log-stream.js';
import { DecisionLogReader } from '../apps/policy/src/store/decision-log-reader.js';
import { root } from './processes.js';

const missing = natsServerMissing('deploy/nats permissions of the decision log');
const passwords: Record<string, string> = Object.fromEntries(
  ['DIAGNOSTICS', 'ADMIN', 'AGENT', 'DIRECTORY', 'AUTHORIZER', 'VAULT', 'SCHEDULER', 'AUDIT', 'CONSENT', 'GATEWAY', 'INTERCEPTOR', 'POLICY', 'NATS_ROUTE'].map((user, i) => [
    user === 'NATS_ROUTE' ? 'NATS_ROUTE_PASSWORD' : `${user}_NATS_PASSWORD`,
    `${user.toLowerCase()}-pw-${i}`,
  ]),
);

/*
 * What deploy/nats/permissions.conf lets each user do with the decision log and the operations
 * that reveal it: the gateway declares and writes it and cannot read it; the policy service reads
 * it and cannot write it; replay and explain (which reveal recorded arguments) are admin's alone.
 */
describe.skipIf(missing)('the decision log under deploy/nats per-service users', () => {
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
    dir = await mkdtemp(join(tmpdir(), 'mandate-decision-log-'));
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

  async function permissionError(nc: NatsConnection, subject: string): Promise<string | undefined> {
    const seen = (async () => {
      for await (const status of nc.status()) if (status.type === 'error') return String((status as { error?: unknown }).error);
      return undefined;
    })();
    nc.publish(subject, '{}');
    await nc.flush();
    return Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
  }

  it('lets the gateway write an entry and the policy service open it, and neither the other way round', async () => {
    const { ring } = await loadDecisionLogKeys({ mode: 'embedded', dataDir: dir });
    const cipher = new EnvelopeCipher(ring);
    const id = randomUUID();
    const request = { claims: { groups: ['finance'] }, scopes: ['finance.write'], arguments: { amount: 42 }, now: Date.now() };
    const entry: DecisionEntry = {
      id,
      tenant: tenantId('acme'),
      gateway: 'finance-gw',
      recordedAt: new Date().toISOString(),
      tool: 'finance___approve_expense',
      principal: { iss: 'https://idp.example', sub: 'sarah' },
      policySet: 'expenses',
      policyVersion: 'hash-1',
      mode: 'enforce',
      decided: { decision: 'allow', determining: ['finance-under-100'] },
      sealed: cipher.sealToString(JSON.stringify(request), decisionSealId('acme', 'finance-gw', id)),
    };
    const written = await DecisionLogStream.open(await as('gateway'), 30, 1);
    await written.publish(entry);
    const opened = await new DecisionLogReader(await as('policy'), cipher).byId(tenantId('acme'), id);
    expect(opened).toEqual({ entry, request });
    await expect(new DecisionLogReader(await as('gateway'), cipher).byId(tenantId('acme'), id)).rejects.toThrow();
    expect(await permissionError(await as('policy'), decisionSubject('acme', 'finance-gw', randomUUID()))).toMatch(/permissions violation/i);
  });

  it('refuses replay and explain to every user but admin', async () => {
    for (const user of ['agent', 'gateway', 'interceptor', 'policy']) {
      const nc = await as(user);
      for (const subject of [policyReplayEndpoint.subject, policyExplainEndpoint.subject]) expect(await permissionError(nc, subject), `${user} ${subject}`).toMatch(/permissions violation/i);
    }
    const admin = await as('admin');
    expect(await permissionError(admin, policyExplainEndpoint.subject)).toBeUndefined();
  });
});
