import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { BusClient, JetStreamPublisher } from '@mandate/bus';
import { AUDIT_STREAM, AUDIT_TRAIL_STREAM, auditQueryEndpoint, echoEndpoint, tenantId } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { assertBuilt, cliEntry, spawnNode, type Spawned } from './processes.js';

const missing = natsServerMissing('`mandate up` end to end');

describe.skipIf(missing)('mandate up: the whole system on the embedded default', () => {
  const running: Spawned[] = [];
  afterEach(async () => {
    // Ctrl-C, not SIGKILL: `mandate up` must stop its nats-server and services itself.
    for (const process of running.splice(0)) {
      if (process.child.exitCode !== null) continue;
      process.child.kill('SIGINT');
      const timer = setTimeout(() => process.child.kill('SIGKILL'), 20_000);
      await process.exit;
      clearTimeout(timer);
    }
  });

  /** Whether `count` ports from `first` can all be listened on at this moment. */
  async function rangeFree(first: number, count: number): Promise<boolean> {
    for (let port = first; port < first + count; port++) {
      const free = await new Promise<boolean>((resolve) => {
        const server: Server = createServer();
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
      });
      if (!free) return false;
    }
    return true;
  }

  /** A free port outside `[from, from + 10)`, the metrics ports `mandate up` hands out. */
  async function freePortOutside(from: number): Promise<number> {
    for (;;) {
      const port = await freePort();
      if (port < from || port >= from + 10) return port;
    }
  }

  async function up(dataDir: string, natsPort: number, monitorPort: number, metricsPort: number, jwksPort = 0, options: { args?: string[]; asInTerminal?: boolean } = {}): Promise<Spawned> {
    const args = ['up', '--data-dir', dataDir, '--nats-port', String(natsPort), '--monitor-port', String(monitorPort), '--metrics-port', String(metricsPort), ...(options.args ?? [])];
    // The HTTP ports of the authorizer, the consent service and the gateway too, so a running `npm start` (4480, 4490, 4494) does not clash.
    const started = spawnNode(
      cliEntry,
      args,
      {
        AUTHORIZER_HTTP_PORT: String(jwksPort),
        CONSENT_HTTP_PORT: String(await freePortOutside(metricsPort)),
        GATEWAY_HTTP_PORT: String(await freePortOutside(metricsPort)),
      },
      { asInTerminal: options.asInTerminal ?? false },
    );
    running.push(started);
    await started.waitFor('Press Ctrl-C to stop.', 60_000);
    return started;
  }

  it('starts NATS, the streams and every service; Ctrl-C stops it all; a second start finds its data', async () => {
    assertBuilt(cliEntry);
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
    const [natsPort, monitorPort, jwksPort] = [await freePort(), await freePort(), await freePort()];
    // `mandate up` gives service i the metrics port metricsPort + i: keep that range clear of the others.
    let metricsPort = await freePort();
    // Every port of the range free now, not only the first: other test files take ports meanwhile.
    while ([natsPort, monitorPort, jwksPort].some((p) => p >= metricsPort && p < metricsPort + 12) || !(await rangeFree(metricsPort, 12))) metricsPort = await freePort();

    const first = await up(dataDir, natsPort, monitorPort, metricsPort, jwksPort);
    expect(first.output()).toContain('generated master key file');
    expect(first.output()).toMatch(/MANDATE_EVENTS \(created\), MANDATE_AUDIT \(created\)/);
    for (const service of ['audit', 'authorizer', 'consent', 'diagnostics', 'directory', 'gateway', 'scheduler', 'vault']) expect(first.output()).toContain(`${service} answers $SRV.PING`);
    // Not a terminal: the services' log lines are JSON, every field kept and the service named.
    const logLines = first
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { service?: string; msg?: string; natsService?: string });
    expect(logLines.find((line) => line.service === 'vault' && line.msg === 'service listening')?.natsService).toBe('mandate-vault');
    const jwksUrl = `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`;
    expect(first.output()).toContain(jwksUrl);
    const firstKeys = (await (await fetch(jwksUrl)).json()) as { keys: { kid: string }[] };
    expect(firstKeys.keys).toHaveLength(1);
    expect(first.output()).toContain(`nats://127.0.0.1:${natsPort}`);

    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    expect((await new BusClient(nc).request(echoEndpoint, { message: 'through up' })).message).toBe('through up');
    const published = await new JetStreamPublisher(nc).audit({ tenant: tenantId('acme'), service: 'directory', action: 'workload-created', outcome: 'succeeded', actor: { admin: 'e2e' } });
    const trailIds = async (bus: BusClient) => (await bus.request(auditQueryEndpoint, { tenant: 'acme' })).entries.map((entry) => entry.record.id);
    // Chained into the trail, the record leaves the intake stream (a work queue).
    await expect.poll(() => trailIds(new BusClient(nc)), { timeout: 15_000 }).toContain(published.id);
    // Each service has its own Prometheus port; the echo was served by diagnostics.
    const diagnosticsMetrics = first.output().match(/service diagnostics\s+ready\s+metrics (\S+)/)?.[1];
    expect(diagnosticsMetrics).toBeDefined();
    const metrics = await (await fetch(diagnosticsMetrics!)).text();
    expect(metrics).toContain('rpc_server_call_duration');
    await nc.close();

    const status = spawnNode(cliEntry, ['status', '--json', '--nats-url', `nats://127.0.0.1:${natsPort}`]);
    expect(await status.exit).toBe(0);
    const report = JSON.parse(status.output()) as { services: { name: string }[]; streams: { name: string; kind: string; messages: number; bytes: number; denyDelete: boolean }[] };
    expect(report.services.map((s) => s.name)).toContain('mandate-diagnostics');
    expect(report.streams.find((s) => s.name === AUDIT_STREAM.name)).toMatchObject({ kind: 'stream', messages: 0, denyDelete: true });
    // The trail the published record went into, append-only; and the buckets the services made on first use.
    expect(report.streams.find((s) => s.name === AUDIT_TRAIL_STREAM.name)).toMatchObject({ kind: 'stream', denyDelete: true });
    expect(report.streams.find((s) => s.name === AUDIT_TRAIL_STREAM.name)!.messages).toBeGreaterThan(0);
    expect(report.streams.find((s) => s.name === 'KV_mandate_audit_heads')).toMatchObject({ kind: 'kv' });
    expect(report.streams.find((s) => s.name === 'KV_mandate_audit_trail')).toBeUndefined();

    first.child.kill('SIGINT');
    expect(await first.exit).toBe(0);
    expect(first.output()).toContain(`stopped; data kept in ${dataDir}`);
    await expect(connect({ servers: `nats://127.0.0.1:${natsPort}`, reconnect: false, timeout: 500 })).rejects.toThrow();

    const second = await up(dataDir, natsPort, monitorPort, metricsPort, jwksPort);
    // The WAT signing key was found again (stored encrypted under the master key file).
    expect(((await (await fetch(jwksUrl)).json()) as { keys: { kid: string }[] }).keys).toEqual(firstKeys.keys);
    expect(second.output()).not.toContain('generated master key file');
    expect(second.output()).toMatch(/MANDATE_EVENTS \(unchanged\), MANDATE_AUDIT \(unchanged\)/);
    const again = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    expect((await (await jetstreamManager(again)).streams.info(AUDIT_STREAM.name)).state.messages).toBe(0);
    expect(await trailIds(new BusClient(again))).toContain(published.id);
    await again.close();
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);
  }, 120_000);

  it('says clearly when the NATS port is taken, and exits non-zero', async () => {
    assertBuilt(cliEntry);
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
    const [natsPort, monitorPort] = [await freePort(), await freePort()];
    // No metrics ports: `mandate up` would take metricsPort + i for each service, a range nobody checked here.
    await up(dataDir, natsPort, monitorPort, 0);
    // Another data directory: the same one is refused before any port is looked at.
    const otherDataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
    const clash = spawnNode(cliEntry, ['up', '--data-dir', otherDataDir, '--nats-port', String(natsPort), '--monitor-port', String(await freePort()), '--metrics-port', '0']);
    expect(await clash.exit).toBe(1);
    expect(clash.output()).toContain(`✗ port ${natsPort} (--nats-port) is in use: choose another with --nats-port`);
  });

  it('Ctrl-C in the terminal: every service gets one SIGTERM and answers the requests in flight, then NATS stops; exit 0', async () => {
    assertBuilt(cliEntry);
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
    const [natsPort, monitorPort] = [await freePort(), await freePort()];
    const system = await up(dataDir, natsPort, monitorPort, 0, 0, { asInTerminal: true, args: ['--log-format', 'pretty'] });
    // Not the default port: the CLI in another terminal must be told where NATS is.
    expect(system.output()).toContain(`export NATS_URL=nats://127.0.0.1:${natsPort}`);

    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    const bus = new BusClient(nc, { defaultTimeoutMs: 15_000 });
    const inFlight = ['first', 'second', 'third'].map((message) => bus.request(echoEndpoint, { message, delayMs: 2_000 }));
    await new Promise((r) => setTimeout(r, 500));
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground process group.
    process.kill(-system.child.pid!, 'SIGINT');

    expect((await Promise.all(inFlight)).map((reply) => reply.message)).toEqual(['first', 'second', 'third']);
    expect(await system.exit).toBe(0);
    await nc.close();
    const output = system.output();
    expect(output).not.toContain('second SIGTERM');
    expect(output).not.toContain('SIGINT: draining');
    for (const service of ['audit', 'authorizer', 'consent', 'diagnostics', 'directory', 'gateway', 'scheduler', 'vault']) {
      expect(output.match(new RegExp(`${service}\\s+info SIGTERM: draining`, 'g')), service).toHaveLength(1);
    }
    // Readable, and the structured fields kept: `service listening natsService=mandate-audit …`.
    expect(output).toMatch(/audit\s+info service listening natsService=mandate-audit/);
    expect(output.indexOf('stopping nats-server')).toBeGreaterThan(output.lastIndexOf('service stopped'));
    expect(output).toContain(`stopped; data kept in ${dataDir}`);
  }, 120_000);

  it('refuses a second `mandate up` on the same data directory, naming the holder; after a crash, a stale lock is taken over', async () => {
    assertBuilt(cliEntry);
    const dataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
    const ports = async () => ['--nats-port', String(await freePort()), '--monitor-port', String(await freePort())];
    const first = await up(dataDir, await freePort(), await freePort(), 0, 0, { args: ['--no-services'] });

    const [otherNats, otherMonitor] = [await freePort(), await freePort()];
    const second = spawnNode(cliEntry, ['up', '--no-services', '--data-dir', dataDir, '--nats-port', String(otherNats), '--monitor-port', String(otherMonitor)]);
    running.push(second);
    expect(await second.exit).toBe(1);
    expect(second.output()).toContain(`✗ ${dataDir} is in use by another \`mandate up\` (PID ${first.child.pid}`);
    expect(second.output()).not.toContain('starting nats-server');
    await expect(connect({ servers: `nats://127.0.0.1:${otherNats}`, reconnect: false, timeout: 500 })).rejects.toThrow();

    // A crash: `mandate up` killed outright leaves its lock, and its nats-server running on the data.
    const lock = JSON.parse(await readFile(join(dataDir, 'mandate-up.lock'), 'utf8')) as { nats: { pid: number } };
    first.child.kill('SIGKILL');
    await first.exit;
    const orphan = spawnNode(cliEntry, ['up', '--no-services', '--data-dir', dataDir, ...(await ports())]);
    running.push(orphan);
    expect(await orphan.exit).toBe(1);
    expect(orphan.output()).toContain(`the nats-server (PID ${lock.nats.pid}) of a \`mandate up\` that has ended (PID ${first.child.pid}) still runs on ${dataDir}`);
    process.kill(lock.nats.pid, 'SIGTERM');
    await expect.poll(() => isAlive(lock.nats.pid), { timeout: 10_000 }).toBe(false);

    const third = spawnNode(cliEntry, ['up', '--no-services', '--data-dir', dataDir, ...(await ports())]);
    running.push(third);
    await third.waitFor('Press Ctrl-C to stop.');
    expect(third.output()).toContain(`its holder (PID ${first.child.pid}) is no longer running`);
    third.child.kill('SIGINT');
    expect(await third.exit).toBe(0);
  }, 60_000);

  it('says in one line which flag moves a port that is taken, before starting anything', async () => {
    assertBuilt(cliEntry);
    const blocker = await listenOnFreePort();
    try {
      const taken = (blocker.address() as { port: number }).port;
      for (const flag of ['--metrics-port', '--consent-port']) {
        const dataDir = await mkdtemp(join(tmpdir(), 'mandate-up-'));
        const args = ['up', '--data-dir', dataDir, '--nats-port', String(await freePort()), '--monitor-port', String(await freePort()), '--metrics-port', '0', '--authorizer-port', '0', '--gateway-port', '0', flag, String(taken)];
        const run = spawnNode(cliEntry, args, { CONSENT_HTTP_PORT: '0' });
        expect(await run.exit, run.output()).toBe(1);
        expect(run.output()).toContain(`✗ port ${taken} (${flag}) is in use: choose another with ${flag}`);
        expect(run.output()).not.toContain('EADDRINUSE');
        expect(run.output()).not.toMatch(/^\s+at /m);
        expect(run.output()).not.toContain('starting nats-server');
      }
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('status says how to start the system when nothing is running', async () => {
    assertBuilt(cliEntry);
    const status = spawnNode(cliEntry, ['status', '--nats-url', `nats://ops:hunter2@127.0.0.1:${await freePort()}`]);
    expect(await status.exit).toBe(6);
    expect(status.output()).toMatch(/cannot reach NATS .* Is `npm start` running\?/);
    expect(status.output()).not.toContain('hunter2');
  });
});

/** Still running: a process that has ended but was not reaped yet (a zombie) has ended. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

async function listenOnFreePort(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
