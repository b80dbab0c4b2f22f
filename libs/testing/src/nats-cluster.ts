import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { findNatsServer, freePort, natsServerVersion } from './nats-server.js';

/** deploy/nats/cluster: the production cluster's node configs, the template the test cluster is made from. */
const TEMPLATE_DIR = fileURLToPath(new URL('../../../deploy/nats/cluster/', import.meta.url));
const NODE_NAMES = ['nats-1', 'nats-2', 'nats-3'] as const;
const ROUTE_PASSWORD = 'testclusterroute0123456789';

export interface ClusterNode {
  /** `nats-1` …, as in deploy/; its `server_name` is `mandate-1` …. */
  readonly name: string;
  readonly serverName: string;
  readonly url: string;
  running(): boolean;
  /** SIGKILL: no shutdown, no flush, as a crashed machine. */
  kill(): Promise<void>;
  /** SIGTERM: a clean shutdown, as a rolling restart does it. */
  stop(): Promise<void>;
  /** Starts it again on its store and ports; resolves once it accepts clients. */
  start(): Promise<void>;
  /** The last of its log. */
  log(): string;
}

export interface NatsCluster {
  readonly nodes: readonly ClusterNode[];
  /** Every node's URL, comma-separated, as `NATS_URL` takes them. */
  readonly url: string;
  readonly servers: string[];
  /** The node named by a `server_name` (a stream's leader, say). */
  node(serverName: string): ClusterNode;
  /** Resolves once JetStream answers (a meta leader is elected) and can place a stream on every node (all peers known). */
  jetStreamReady(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The three nodes of deploy/nats/cluster on loopback, with configs made from those files: the
 * ports, the store directory, `sync_interval` (nats-server 2.9 predates it) and the service
 * permissions (test services connect without users; test/nats-cluster.e2e.test.ts checks the
 * permissions as deployed) are what differ. Routes authenticate as in deploy/compose.yaml.
 */
export async function startNatsCluster(): Promise<NatsCluster> {
  const binary = findNatsServer();
  if (!binary) throw new Error('nats-server is not installed (apt-get install nats-server, or set NATS_SERVER_BIN)');
  const [major = 0, minor = 0] = (natsServerVersion(binary).match(/v(\d+)\.(\d+)/) ?? []).slice(1).map(Number);
  const keepSyncInterval = major > 2 || (major === 2 && minor >= 10);
  const dir = await mkdtemp(join(tmpdir(), 'mandate-cluster-'));
  const ports: { name: string; client: number; monitor: number; route: number }[] = [];
  for (const name of NODE_NAMES) ports.push({ name, client: await freePort(), monitor: await freePort(), route: await freePort() });

  const configs = new Map<string, string>();
  for (const node of ports) {
    const template = await readFile(join(TEMPLATE_DIR, `${node.name}.conf`), 'utf8');
    let config = must(template, 'listen: 0.0.0.0:4222', `listen: 127.0.0.1:${node.client}`);
    config = must(config, 'http: 0.0.0.0:8222', `http: 127.0.0.1:${node.monitor}`);
    config = must(config, 'listen: 0.0.0.0:6222', `listen: 127.0.0.1:${node.route}`);
    config = must(config, 'store_dir: "/data/jetstream"', `store_dir: "${join(dir, node.name)}"`);
    config = must(config, 'include ../permissions.conf', '');
    if (!keepSyncInterval) config = must(config, '  sync_interval: always\n', '');
    const file = join(dir, `${node.name}.conf`);
    await writeFile(file, config);
    configs.set(node.name, file);
  }

  const nodes = ports.map((node, index): ClusterNode => {
    let child: ChildProcess | undefined;
    let log = '';
    const routes = ports
      .filter((other) => other.name !== node.name)
      .map((other) => `nats-route://route:${ROUTE_PASSWORD}@127.0.0.1:${other.route}`)
      .join(',');
    const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
    const stopWith = async (signal: NodeJS.Signals) => {
      if (!child || !running()) return;
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill(signal);
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    };
    return {
      name: node.name,
      serverName: `mandate-${index + 1}`,
      url: `nats://127.0.0.1:${node.client}`,
      running,
      log: () => log,
      async start() {
        if (running()) return;
        child = spawn(binary, ['-c', configs.get(node.name)!, '--routes', routes], { env: { ...process.env, NATS_ROUTE_PASSWORD: ROUTE_PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] });
        const append = (chunk: Buffer) => void (log = (log + chunk.toString()).slice(-50_000));
        child.stdout!.on('data', append);
        child.stderr!.on('data', append);
        const deadline = Date.now() + 20_000;
        while (!log.includes('Server is ready')) {
          if (!running()) throw new Error(`${node.name} exited while starting:\n${log}`);
          if (Date.now() > deadline) throw new Error(`${node.name} did not start within 20 s:\n${log}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      },
      kill: () => stopWith('SIGKILL'),
      stop: () => stopWith('SIGTERM'),
    };
  });
  await Promise.all(nodes.map((node) => node.start()));
  const servers = nodes.map((node) => node.url);
  const cluster: NatsCluster = {
    nodes,
    servers,
    url: servers.join(','),
    node(serverName) {
      const found = nodes.find((node) => node.serverName === serverName);
      if (!found) throw new TypeError(`no node ${serverName}`);
      return found;
    },
    async jetStreamReady(timeoutMs = 30_000) {
      const nc = await connect({ servers });
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          try {
            const jsm = await jetstreamManager(nc, { timeout: 2_000 });
            await jsm.getAccountInfo();
            // A meta leader alone is not enough: a stream of three replicas needs every peer known
            // to it, which can take a moment longer ("no suitable peers for placement").
            const probe = `READY_${process.pid}_${Date.now()}`;
            await jsm.streams.add({ name: probe, subjects: [`mandate-test.ready.${probe}`], storage: StorageType.Memory, num_replicas: nodes.length });
            await jsm.streams.delete(probe);
            return;
          } catch (error) {
            if (Date.now() > deadline) throw new Error(`JetStream did not elect a meta leader within ${timeoutMs} ms`, { cause: error });
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        }
      } finally {
        await nc.close();
      }
    },
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.jetStreamReady();
  return cluster;
}

/** Replaces a line the template must have: a template that changed shape fails here, not later with a container's values. */
function must(text: string, line: string, replacement: string): string {
  if (!text.includes(line)) throw new Error(`deploy/nats/cluster no longer has "${line.trim()}"`);
  return text.replace(line, replacement);
}
