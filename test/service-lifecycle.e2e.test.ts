import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { BusClient } from '@mandate/bus';
import { echoEndpoint, type MandateError } from '@mandate/contracts';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { assertBuilt, diagnosticsEntry, spawnNode } from './processes.js';

const missing = natsServerMissing('service process lifecycle');

describe.skipIf(missing)('a service process', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let bus: BusClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    bus = new BusClient(nc, { defaultTimeoutMs: 5_000 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('on SIGTERM stops taking requests, answers the one in flight, and exits 0', async () => {
    assertBuilt(diagnosticsEntry);
    const service = spawnNode(diagnosticsEntry, [], { NATS_URL: nats.url });
    await service.waitFor('service listening');

    const inFlight = bus.request(echoEndpoint, { message: 'slow', delayMs: 1_500 });
    await new Promise((r) => setTimeout(r, 300));
    service.child.kill('SIGTERM');
    await service.waitFor('SIGTERM: draining');

    expect((await inFlight).message).toBe('slow');
    expect(await service.exit).toBe(0);
    const after = (await bus.request(echoEndpoint, { message: 'late' }).catch((e: unknown) => e)) as MandateError;
    expect(after.code).toBe('unavailable');
  });

  it('refuses to start with a bad setting, naming the variable but not its value', async () => {
    assertBuilt(diagnosticsEntry);
    const service = spawnNode(diagnosticsEntry, [], { NATS_URL: 'http://user:hunter2@example', METRICS_PORT: 'lots' });
    expect(await service.exit).toBe(78);
    expect(service.output()).toContain('NATS_URL');
    expect(service.output()).toContain('METRICS_PORT');
    expect(service.output()).not.toContain('hunter2');
  });
});
