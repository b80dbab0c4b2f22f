import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { BusClient, JetStreamPublisher } from '@mandate/bus';
import { AUDIT_STREAM, echoEndpoint, tenantId } from '@mandate/contracts';
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

  /** A free port outside `[from, from + 10)`, the metrics ports `mandate up` hands out. */
  async function freePortOutside(from: number): Promise<number> {
    for (;;) {
      const port = await freePort();
      if (port < from || port >= from + 10) return port;
    }
  }

  async function up(dataDir: string, natsPort: number, monitorPort: number, metricsPort: number, jwksPort = 0): Promise<Spawned> {
    const args = ['up', '--data-dir', dataDir, '--nats-port', String(natsPort), '--monitor-port', String(monitorPort), '--metrics-port', String(metricsPort)];
    // The HTTP ports of the authorizer, the consent service and the gateway too, so a running `npm start` (4480, 4490, 4494) does not clash.
    const started = spawnNode(cliEntry, args, {
      AUTHORIZER_HTTP_PORT: String(jwksPort),
      CONSENT_HTTP_PORT: String(await freePortOutside(metricsPort)),
      GATEWAY_HTTP_PORT: String(await freePortOutside(metricsPort)),
    });
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
    while ([natsPort, monitorPort, jwksPort].some((p) => p >= metricsPort && p < metricsPort + 10)) metricsPort = await freePort();

    const first = await up(dataDir, natsPort, monitorPort, metricsPort, jwksPort);
    expect(first.output()).toContain('generated master key file');
    expect(first.output()).toMatch(/MANDATE_EVENTS \(created\), MANDATE_AUDIT \(created\)/);
    for (const service of ['audit', 'authorizer', 'consent', 'diagnostics', 'directory', 'gateway', 'scheduler', 'vault']) expect(first.output()).toContain(`${service} answers $SRV.PING`);
    const jwksUrl = `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`;
    expect(first.output()).toContain(jwksUrl);
    const firstKeys = (await (await fetch(jwksUrl)).json()) as { keys: { kid: string }[] };
    expect(firstKeys.keys).toHaveLength(1);
    expect(first.output()).toContain(`nats://127.0.0.1:${natsPort}`);

    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    expect((await new BusClient(nc).request(echoEndpoint, { message: 'through up' })).message).toBe('through up');
    await new JetStreamPublisher(nc).audit({ tenant: tenantId('acme'), service: 'directory', action: 'workload-created', outcome: 'succeeded', actor: { admin: 'e2e' } });
    // Each service has its own Prometheus port; the echo was served by diagnostics.
    const diagnosticsMetrics = first.output().match(/service diagnostics\s+ready\s+metrics (\S+)/)?.[1];
    expect(diagnosticsMetrics).toBeDefined();
    const metrics = await (await fetch(diagnosticsMetrics!)).text();
    expect(metrics).toContain('rpc_server_call_duration');
    await nc.close();

    const status = spawnNode(cliEntry, ['status', '--json', '--nats-url', `nats://127.0.0.1:${natsPort}`]);
    expect(await status.exit).toBe(0);
    const report = JSON.parse(status.output()) as { services: { name: string }[]; streams: { name: string; messages: number; denyDelete: boolean }[] };
    expect(report.services.map((s) => s.name)).toContain('mandate-diagnostics');
    expect(report.streams.find((s) => s.name === AUDIT_STREAM.name)).toMatchObject({ messages: 1, denyDelete: true });

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
    expect((await (await jetstreamManager(again)).streams.info(AUDIT_STREAM.name)).state.messages).toBe(1);
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
    const clash = spawnNode(cliEntry, ['up', '--data-dir', dataDir, '--nats-port', String(natsPort), '--monitor-port', String(await freePort())]);
    expect(await clash.exit).toBe(1);
    expect(clash.output()).toContain(`port ${natsPort} on 127.0.0.1 is already in use`);
  });

  it('status says how to start the system when nothing is running', async () => {
    assertBuilt(cliEntry);
    const status = spawnNode(cliEntry, ['status', '--nats-url', `nats://ops:hunter2@127.0.0.1:${await freePort()}`]);
    expect(await status.exit).toBe(6);
    expect(status.output()).toMatch(/cannot reach NATS .* Is `npm start` running\?/);
    expect(status.output()).not.toContain('hunter2');
  });
});
