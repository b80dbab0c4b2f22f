import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { echoEndpoint } from '@mandate/contracts';
import { natsServerMissing, startNatsServer, type NatsServerHandle, failure } from '@mandate/testing';
import { BusClient } from './client.js';
import { connectToBus } from './connection.js';

const missing = natsServerMissing('bus client under NATS permissions');

/** A user who may send nothing but replies, and one who may send anything, as deploy/nats/permissions.conf gives each service its own. */
const PERMISSIONS = `
authorization {
  users = [
    { user: nobody, password: nobody-pw, permissions: { publish: { allow: ["_INBOX_nobody.>"] }, subscribe: { allow: ["_INBOX_nobody.>"] } } }
    { user: anyone, password: anyone-pw }
  ]
}
`;

describe.skipIf(missing)('BusClient: what a request that the bus does not carry says', () => {
  let dir: string;
  let nats: NatsServerHandle;
  const connections: NatsConnection[] = [];
  const busAs = async (user: string) => {
    const nc = await connectToBus({ servers: nats.url, name: `client-test-${user}`, user, password: `${user}-pw` });
    connections.push(nc);
    return new BusClient(nc, { defaultTimeoutMs: 2_000 });
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mandate-bus-permissions-'));
    await writeFile(join(dir, 'auth.conf'), PERMISSIONS);
    nats = await startNatsServer({ args: ['-c', join(dir, 'auth.conf')] });
  });

  afterAll(async () => {
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('says access_denied, naming the operation and the subject, when the connection may not send to it (no retry helps)', async () => {
    const error = await failure((await busAs('nobody')).request(echoEndpoint, { message: 'hello' }));
    expect(error.code).toBe('access_denied');
    expect(error.message).toBe(`this connection's NATS user may not call diagnostics echo (the bus refused to carry it: a permissions violation for ${echoEndpoint.subject})`);
  });

  it('still says unavailable when the request may go but nobody serves it', async () => {
    const error = await failure((await busAs('anyone')).request(echoEndpoint, { message: 'hello' }));
    expect(error.code).toBe('unavailable');
    expect(error.message).toBe('no diagnostics service is running for echo');
  });
});
