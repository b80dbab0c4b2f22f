import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { findNatsServer, freePort, natsServerMissing, natsServerVersion, skipReason } from '@mandate/testing';
import { root } from './processes.js';

/*
 * The three nodes of deploy/nats/cluster, started on loopback as deploy/compose.yaml starts them
 * (its `--routes`, the route password in each URL), each config changed only where a container
 * and this machine differ: ports, the store directory, and `sync_interval` on nats-server 2.9.
 * The routes must form, authenticated, and a stream with replicas 3 must take writes.
 */
const missing = natsServerMissing('the deploy/nats three-node cluster');
const NODES = ['nats-1', 'nats-2', 'nats-3'] as const;
const passwords = {
  DIAGNOSTICS_NATS_PASSWORD: 'diag-pw',
  DIRECTORY_NATS_PASSWORD: 'dir-pw',
  AUTHORIZER_NATS_PASSWORD: 'authz-pw',
  VAULT_NATS_PASSWORD: 'vault-pw',
  SCHEDULER_NATS_PASSWORD: 'scheduler-pw',
  AUDIT_NATS_PASSWORD: 'audit-pw',
  CONSENT_NATS_PASSWORD: 'consent-pw',
  GATEWAY_NATS_PASSWORD: 'gateway-pw',
  INTERCEPTOR_NATS_PASSWORD: 'interceptor-pw',
  POLICY_NATS_PASSWORD: 'policy-pw',
  ADMIN_NATS_PASSWORD: 'admin-pw',
  AGENT_NATS_PASSWORD: 'agent-pw',
  NATS_ROUTE_PASSWORD: 'a1b2c3d4e5f6route',
};

interface Node {
  name: (typeof NODES)[number];
  client: number;
  monitor: number;
  route: number;
  child?: ChildProcess;
  log: string;
}

/** `sync_interval` needs nats-server 2.10+ (Debian 12 ships 2.9). */
function supportsSyncInterval(binary: string): boolean {
  const [major = 0, minor = 0] = (natsServerVersion(binary).match(/v(\d+)\.(\d+)/) ?? []).slice(1).map(Number);
  return major > 2 || (major === 2 && minor >= 10);
}

/** Replaces one line that must be there: a config that changed shape fails here rather than running with a container's values. */
function replaceLine(text: string, line: string, replacement: string, file: string): string {
  if (!text.includes(line)) throw new Error(`${file} no longer has "${line.trim()}"`);
  return text.replace(line, replacement);
}

async function monitoring<T>(node: Node, path: string): Promise<T> {
  return (await (await fetch(`http://127.0.0.1:${node.monitor}${path}`)).json()) as T;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(missing)('deploy/nats/cluster: three nodes as deploy/compose.yaml runs them', () => {
  let dir: string;
  let nodes: Node[];
  const connections: NatsConnection[] = [];

  /** The `--routes` compose.yaml gives this node, pointing at this machine's route ports. */
  async function routesOf(node: Node): Promise<string> {
    const compose = parse(await readFile(join(root, 'deploy', 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, { command: string[] }> };
    const command = compose.services[node.name]!.command;
    expect(command.slice(0, 2)).toEqual(['-c', `/etc/nats/cluster/${node.name}.conf`]);
    let routes = command[command.indexOf('--routes') + 1]!.replaceAll('${NATS_ROUTE_PASSWORD}', passwords.NATS_ROUTE_PASSWORD);
    for (const other of nodes) routes = routes.replaceAll(`@${other.name}:6222`, `@127.0.0.1:${other.route}`);
    return routes;
  }

  beforeAll(async () => {
    const binary = findNatsServer()!;
    dir = await mkdtemp(join(tmpdir(), 'mandate-nats-cluster-'));
    await cp(join(root, 'deploy', 'nats'), join(dir, 'nats'), { recursive: true });
    nodes = [];
    for (const name of NODES) nodes.push({ name, client: await freePort(), monitor: await freePort(), route: await freePort(), log: '' });
    const keepSyncInterval = supportsSyncInterval(binary);
    if (!keepSyncInterval) skipReason('sync_interval in deploy/nats/cluster', `${natsServerVersion(binary)} predates it; the cluster runs without that line`);
    for (const node of nodes) {
      const file = join(dir, 'nats', 'cluster', `${node.name}.conf`);
      let config = await readFile(file, 'utf8');
      config = replaceLine(config, 'listen: 0.0.0.0:4222', `listen: 127.0.0.1:${node.client}`, file);
      config = replaceLine(config, 'http: 0.0.0.0:8222', `http: 127.0.0.1:${node.monitor}`, file);
      config = replaceLine(config, 'listen: 0.0.0.0:6222', `listen: 127.0.0.1:${node.route}`, file);
      config = replaceLine(config, 'store_dir: "/data/jetstream"', `store_dir: "${join(dir, node.name)}"`, file);
      if (!keepSyncInterval) config = replaceLine(config, '  sync_interval: always\n', '', file);
      await writeFile(file, config);
    }
    for (const node of nodes) {
      const child = spawn(binary, ['-c', join(dir, 'nats', 'cluster', `${node.name}.conf`), '--routes', await routesOf(node)], {
        env: { ...process.env, ...passwords },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const append = (chunk: Buffer) => void (node.log = (node.log + chunk.toString()).slice(-50_000));
      child.stdout!.on('data', append);
      child.stderr!.on('data', append);
      node.child = child;
    }
  }, 60_000);

  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await Promise.all(
      (nodes ?? []).map(async ({ child }) => {
        if (!child || child.exitCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('forms the routes, every node to both others, authenticated as the route user', async () => {
    const ids = await Promise.all(nodes.map((node) => until(`${node.name} answering /varz`, async () => (await monitoring<{ server_id: string }>(node, '/varz')).server_id)));
    for (const [i, node] of nodes.entries()) {
      const others = ids.filter((_, j) => j !== i).sort();
      const connected = await until(`${node.name} routed to both other nodes:\n${node.log}`, async () => {
        const routez = await monitoring<{ routes?: { remote_id: string }[] }>(node, '/routez');
        const remotes = [...new Set((routez.routes ?? []).map((route) => route.remote_id))].sort();
        return remotes.length === 2 ? remotes : undefined;
      });
      expect(connected).toEqual(others);
    }
    for (const node of nodes) expect(node.log, node.name).not.toContain('Authentication Failure');
  }, 60_000);

  it('takes writes into a stream with replicas 3, and every node reads them', async () => {
    const admin = (node: Node) => connect({ servers: `nats://127.0.0.1:${node.client}`, user: 'admin', pass: passwords.ADMIN_NATS_PASSWORD, reconnect: false });
    const nc = await admin(nodes[0]!);
    connections.push(nc);
    // JetStream answers once the nodes have elected a meta leader.
    const jsm = await until('a JetStream meta leader', () => jetstreamManager(nc, { timeout: 2_000 }));
    await until('the stream with replicas 3', async () => jsm.streams.add({ name: 'CLUSTER_CHECK', subjects: ['mandate.cluster-check.>'], num_replicas: 3 }));
    const js = jetstream(nc);
    for (let i = 1; i <= 10; i++) expect((await js.publish('mandate.cluster-check.write', `write ${i}`)).seq).toBe(i);
    const info = await until('every replica current', async () => {
      const current = await jsm.streams.info('CLUSTER_CHECK');
      return current.cluster?.replicas?.length === 2 && current.cluster.replicas.every((replica) => replica.current) ? current : undefined;
    });
    expect(info.state.messages).toBe(10);
    expect([info.cluster!.leader, ...info.cluster!.replicas!.map((replica) => replica.name)].sort()).toEqual(['mandate-1', 'mandate-2', 'mandate-3']);

    for (const node of nodes.slice(1)) {
      const other = await admin(node);
      connections.push(other);
      const message = await (await jetstreamManager(other)).streams.getMessage('CLUSTER_CHECK', { seq: 10 });
      expect(message?.string(), node.name).toBe('write 10');
    }
  }, 60_000);
});
