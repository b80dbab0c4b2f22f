import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AUDIT_INTAKE_BATCH_MAX_RECORDS, AUDIT_STREAM, MandateError, tenantId, type AuditRecord } from '@mandate/contracts';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { takeBatch } from './audit-intake-batches.js';
import { declareStreams } from './jetstream.js';
import { JetStreamPublisher } from './publisher.js';

describe('takeBatch', () => {
  const queued = (...sizes: number[]) => sizes.map((size, i) => ({ json: 'x'.repeat(size), i }));

  it('takes up to the record limit from the front and leaves the rest queued', () => {
    const queue = queued(10, 10, 10, 10, 10);
    expect(takeBatch(queue, { records: 3, bytes: 1_000 }).map((q) => q.i)).toEqual([0, 1, 2]);
    expect(queue.map((q) => q.i)).toEqual([3, 4]);
  });

  it('stops before the byte limit, counting the array brackets and commas', () => {
    // [a,b] of 10-byte records is 23 bytes; a third would make 34.
    expect(takeBatch(queued(10, 10, 10), { records: 10, bytes: 33 }).map((q) => q.i)).toEqual([0, 1]);
    expect(takeBatch(queued(10, 10, 10), { records: 10, bytes: 34 }).map((q) => q.i)).toEqual([0, 1, 2]);
  });

  it('always takes one, however big, and nothing from an empty queue', () => {
    expect(takeBatch(queued(5_000, 1), { records: 10, bytes: 100 }).map((q) => q.i)).toEqual([0]);
    expect(takeBatch([], { records: 10, bytes: 100 })).toEqual([]);
  });
});

const missing = natsServerMissing('audit intake batches');

describe.skipIf(missing)('audit records published in batches, over a real nats-server', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let publisher: JetStreamPublisher;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    // No consumer: the work-queue intake keeps every message, so what was sent can be read back.
    await declareStreams(nc, [AUDIT_STREAM]);
    publisher = new JetStreamPublisher(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const release = (tenant: string, action = 'token-release') => publisher.audit({ tenant: tenantId(tenant), service: 'vault', action, outcome: 'succeeded', actor: { workload: 'agent' } });

  /** The intake's messages from `after` on: their subjects and the records each carries. */
  async function messagesAfter(after: number) {
    const last = (await jsm.streams.info(AUDIT_STREAM.name)).state.last_seq;
    const messages = [];
    for (let seq = after + 1; seq <= last; seq += 1) {
      const msg = await jsm.streams.getMessage(AUDIT_STREAM.name, { seq });
      const body = msg!.json<AuditRecord | AuditRecord[]>();
      messages.push({ subject: msg!.subject, batch: Array.isArray(body), records: Array.isArray(body) ? body : [body], msgId: msg!.header.get('Nats-Msg-Id'), traceparent: msg!.header.get('traceparent') });
    }
    return messages;
  }
  const lastSeq = async () => (await jsm.streams.info(AUDIT_STREAM.name)).state.last_seq;

  it('a record published alone goes alone, as a single record always went (its id as Nats-Msg-Id, its trace context)', async () => {
    const before = await lastSeq();
    const record = await release('alone');
    const [message, ...more] = await messagesAfter(before);
    expect(more).toEqual([]);
    expect(message).toMatchObject({ subject: 'mandate.audit.alone.vault.token-release', batch: false, records: [record], msgId: record.id });
    expect(message!.traceparent).toMatch(new RegExp(`^00-${record.traceId}-[0-9a-f]{16}-0[01]$`));
  });

  it('records published at once go in fewer messages, each record exactly once, a batch never past its limit nor across subjects', async () => {
    const before = await lastSeq();
    const published = await Promise.all(Array.from({ length: 200 }, (_, i) => release(i % 2 === 0 ? 'busy-a' : 'busy-b', i % 4 < 2 ? 'token-release' : 'api-key-release')));
    const messages = await messagesAfter(before);
    expect(messages.length).toBeLessThan(published.length / 4);
    expect(messages.some((m) => m.batch && m.records.length > 1)).toBe(true);
    for (const message of messages) {
      expect(message.records.length).toBeLessThanOrEqual(AUDIT_INTAKE_BATCH_MAX_RECORDS);
      for (const record of message.records) expect(message.subject).toBe(`mandate.audit.${record.tenant}.vault.${record.action}`);
      if (message.batch) expect(message.msgId).toMatch(/^batch-[A-Za-z0-9_-]{43}$/);
      // Every message carries a trace context: a batch its first record's.
      expect(message.traceparent).toMatch(new RegExp(`^00-${message.records[0]!.traceId}-[0-9a-f]{16}-0[01]$`));
    }
    const sent = messages.flatMap((m) => m.records.map((r) => r.id)).sort();
    expect(sent).toEqual(published.map((r) => r.id).sort());
    expect(messages.flatMap((m) => m.records)).toEqual(expect.arrayContaining(published));
  });

  it('a message the intake refuses fails every record it carried with unavailable, and the next ones go again', async () => {
    // A subject no stream captures: JetStream has no responder for it.
    const stray = (n: number) => publisher.audit({ tenant: tenantId('stray'), service: 'vault', action: 'token-release', outcome: 'succeeded', actor: { workload: `agent-${n}` } });
    await jsm.streams.update(AUDIT_STREAM.name, { subjects: ['mandate.audit.somebody-else.>'] });
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => stray(i)));
      expect(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof MandateError && o.reason.code === 'unavailable')).toBe(true);
    } finally {
      await jsm.streams.update(AUDIT_STREAM.name, { subjects: [...AUDIT_STREAM.subjects] });
    }
    const before = await lastSeq();
    const after = await Promise.all(Array.from({ length: 40 }, (_, i) => stray(i)));
    expect((await messagesAfter(before)).flatMap((m) => m.records.map((r) => r.id)).sort()).toEqual(after.map((r) => r.id).sort());
  });
});
