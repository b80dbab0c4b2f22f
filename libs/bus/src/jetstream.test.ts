import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AUDIT_STREAM, EVENTS_STREAM, MandateError, STREAMS, tenantId } from '@mandate/contracts';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { declareStreams } from './jetstream.js';
import { JetStreamPublisher } from './publisher.js';

const missing = natsServerMissing('JetStream streams and publishing');

describe.skipIf(missing)('JetStream streams and publishing', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('creates MANDATE_EVENTS and MANDATE_AUDIT as declared, and a second declaration changes nothing', async () => {
    expect(await declareStreams(nc, STREAMS)).toEqual([
      { name: 'MANDATE_EVENTS', action: 'created' },
      { name: 'MANDATE_AUDIT', action: 'created' },
    ]);
    const audit = (await jsm.streams.info(AUDIT_STREAM.name)).config;
    expect(audit).toMatchObject({ subjects: ['mandate.audit.>'], deny_delete: true, deny_purge: true, duplicate_window: nanos(AUDIT_STREAM.duplicateWindowMs) });
    expect((await jsm.streams.info(EVENTS_STREAM.name)).config.subjects).toEqual(['mandate.evt.>']);
    expect(await declareStreams(nc, STREAMS)).toEqual([
      { name: 'MANDATE_EVENTS', action: 'unchanged' },
      { name: 'MANDATE_AUDIT', action: 'unchanged' },
    ]);
  });

  it('puts a stream that drifted from its declaration back', async () => {
    await declareStreams(nc, STREAMS);
    const current = (await jsm.streams.info(EVENTS_STREAM.name)).config;
    await jsm.streams.update(EVENTS_STREAM.name, { ...current, max_age: nanos(24 * 3_600_000) });
    expect((await declareStreams(nc, [EVENTS_STREAM]))[0]?.action).toBe('updated');
    expect((await jsm.streams.info(EVENTS_STREAM.name)).config.max_age).toBe(nanos(EVENTS_STREAM.maxAgeMs));
  });

  it('refuses to delete an audit record or purge the audit stream', async () => {
    await declareStreams(nc, STREAMS);
    const publisher = new JetStreamPublisher(nc);
    await publisher.audit({ tenant: tenantId('acme'), service: 'directory', action: 'workload-created', outcome: 'succeeded', actor: { admin: 'ops' } });
    const { state } = await jsm.streams.info(AUDIT_STREAM.name);
    await expect(jsm.streams.deleteMessage(AUDIT_STREAM.name, state.last_seq)).rejects.toThrow();
    await expect(jsm.streams.purge(AUDIT_STREAM.name)).rejects.toThrow();
    expect((await jsm.streams.info(AUDIT_STREAM.name)).state.messages).toBe(state.messages);
  });

  it('stores an audit record published twice with the same id once (Nats-Msg-Id)', async () => {
    await declareStreams(nc, STREAMS);
    const publisher = new JetStreamPublisher(nc);
    const before = (await jsm.streams.info(AUDIT_STREAM.name)).state.messages;
    const record = await publisher.audit({ tenant: tenantId('acme'), service: 'vault', action: 'token-released', outcome: 'succeeded', actor: { workload: 'agent' } });
    await publisher.audit({ ...record });
    expect((await jsm.streams.info(AUDIT_STREAM.name)).state.messages).toBe(before + 1);
    const stored = await jsm.streams.getMessage(AUDIT_STREAM.name, { last_by_subj: 'mandate.audit.acme.vault.token-released' });
    expect(stored?.json()).toEqual(record);
    expect(stored?.header.get('Nats-Msg-Id')).toBe(record.id);
    expect(stored?.header.get('traceparent')).toMatch(new RegExp(`^00-${record.traceId}-[0-9a-f]{16}-0[01]$`));
  });

  it('refuses an invalid audit record with invalid_request and publishes nothing', async () => {
    await declareStreams(nc, STREAMS);
    const publisher = new JetStreamPublisher(nc);
    const before = (await jsm.streams.info(AUDIT_STREAM.name)).state.messages;
    const error = await publisher
      .audit({ tenant: 'ACME' as never, service: 'vault', action: 'token-released', outcome: 'maybe' as never, actor: {} })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).code).toBe('invalid_request');
    expect((error as MandateError).issues?.map((i) => i.path).sort()).toEqual(['outcome', 'tenant']);
    expect((await jsm.streams.info(AUDIT_STREAM.name)).state.messages).toBe(before);
  });

  it('publishes domain events to MANDATE_EVENTS with their envelope', async () => {
    await declareStreams(nc, STREAMS);
    const publisher = new JetStreamPublisher(nc);
    const event = await publisher.event('consent', 'granted', 'acme', { sessionId: 's1' });
    const stored = await jsm.streams.getMessage(EVENTS_STREAM.name, { last_by_subj: 'mandate.evt.consent.granted' });
    expect(stored?.json()).toEqual(event);
    expect(event.traceId).toMatch(/^[0-9a-f]{32}$/);
    const forAcme = await publisher.tenantEvent('consent', 'granted', 'acme', { sessionId: 's2' });
    expect((await jsm.streams.getMessage(EVENTS_STREAM.name, { last_by_subj: 'mandate.evt.consent.granted.acme' }))?.json()).toEqual(forAcme);
  });
});
