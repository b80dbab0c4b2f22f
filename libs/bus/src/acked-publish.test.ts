import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { AckedPublisher, PublishRefusedError } from './acked-publish.js';

const missing = natsServerMissing('acknowledged JetStream publishes');
const data = (text: string) => new TextEncoder().encode(text);

describe.skipIf(missing)('AckedPublisher', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url, inboxPrefix: '_INBOX_acked' });
    await (await jetstreamManager(nc)).streams.add({ name: 'ACKED', subjects: ['acked.>'], duplicate_window: 60_000_000_000 });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('resolves each publish with its own stream sequence, many at once, and stores a repeated message id once', async () => {
    const publisher = new AckedPublisher(nc);
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish(`acked.n.${i}`, data(`m${i}`), { msgID: `id-${i}` })));
    expect(acks.map((a) => a.stream)).toEqual(acks.map(() => 'ACKED'));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    const again = await publisher.publish('acked.n.0', data('m0'), { msgID: 'id-0' });
    expect(again).toEqual({ stream: 'ACKED', seq: acks[0]!.seq, duplicate: true });
    const stored = await (await jetstreamManager(nc)).streams.getMessage('ACKED', { seq: acks[7]!.seq });
    expect(stored?.string()).toBe('m7');
    expect(stored?.header.get('Nats-Msg-Id')).toBe('id-7');
    publisher.close();
  });

  it('answers on the connection inbox prefix (a NATS user may listen only there), keeping headers it is given', async () => {
    const seen: string[] = [];
    const spy = nc.subscribe('acked.spy', { callback: (_e, msg) => void seen.push(msg.reply ?? '') });
    const publisher = new AckedPublisher(nc, 200);
    const extra = headers();
    extra.set('traceparent', `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
    const ack = await publisher.publish('acked.spy', data('x'), { msgID: 'spied', headers: extra });
    // The spy's copy and the acknowledgement come on different paths of the server: either may be first.
    await vi.waitFor(() => expect(seen[0]).toMatch(/^_INBOX_acked\./));
    const stored = await (await jetstreamManager(nc)).streams.getMessage('ACKED', { seq: ack.seq });
    expect(stored?.header.get('traceparent')).toBe(extra.get('traceparent'));
    spy.unsubscribe();
    publisher.close();
  });

  it('refuses: no stream for the subject, a message the stream rejects, no answer in time, a closed publisher', async () => {
    const publisher = new AckedPublisher(nc, 200);
    await expect(publisher.publish('nobody.listens', data('x'))).rejects.toThrow(/no responders/);
    const wrongStream = headers();
    wrongStream.set('Nats-Expected-Stream', 'SOMETHING_ELSE');
    await expect(publisher.publish('acked.refused', data('x'), { headers: wrongStream })).rejects.toThrow(/JetStream refused the message/);
    // A plain subscriber that never answers: no "no responders", no acknowledgement either.
    const silent = nc.subscribe('silent.subject');
    const timedOut = await publisher.publish('silent.subject', data('x')).catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(PublishRefusedError);
    expect((timedOut as Error).message).toMatch(/did not answer in time/);
    silent.unsubscribe();
    // Closing refuses what waits at once, before any answer can arrive.
    const pending = publisher.publish('acked.pending', data('x'));
    publisher.close();
    await expect(pending).rejects.toThrow(/closed/);
    // A closed publisher listens again on its next publish.
    expect((await publisher.publish('acked.after', data('y'))).stream).toBe('ACKED');
    publisher.close();
  });
});
