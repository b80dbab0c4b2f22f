import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MandateError, tenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer } from '@mandate/testing';
import { ASSERTION_ID_RETENTION_MS, StoreReplayGuard } from './assertion-replay-guard.js';

const missing = natsServerMissing('assertion replay guard');
const acme = tenantId('acme');

describe.skipIf(missing)('StoreReplayGuard on JetStream KV', () => {
  let nats: Awaited<ReturnType<typeof startNatsServer>>;
  let nc: NatsConnection;
  let store: JetStreamKvStore;
  let nowMs = Date.UTC(2026, 0, 1);
  let guard: StoreReplayGuard;
  const seconds = (ms: number) => Math.floor(ms / 1000);

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    store = new JetStreamKvStore(nc, { clock: () => nowMs });
    guard = await StoreReplayGuard.open(store, () => nowMs);
  });
  afterAll(async () => {
    await store?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('refuses a replay of a live assertion id, in the same tenant only', async () => {
    const exp = seconds(nowMs) + 300;
    expect(await guard.firstUse(acme, 'report-agent', 'jti-live', exp)).toBe(true);
    expect(await guard.firstUse(acme, 'report-agent', 'jti-live', exp)).toBe(false);
    expect(await guard.firstUse(tenantId('globex'), 'report-agent', 'jti-live', exp)).toBe(true);
  });

  it('forgets an id once its assertion has expired (exp plus tolerance passed), and not a moment before', async () => {
    const exp = seconds(nowMs) + 60;
    expect(await guard.firstUse(acme, 'report-agent', 'jti-expiring', exp)).toBe(true);
    nowMs = exp * 1000 - 1;
    expect(await guard.firstUse(acme, 'report-agent', 'jti-expiring', exp)).toBe(false);
    nowMs = exp * 1000;
    // The assertion itself is refused as expired by now; its id no longer matters and is not held.
    expect(await guard.firstUse(acme, 'report-agent', 'jti-expiring', exp)).toBe(true);
  });

  it('keeps ids in a bucket whose max age is the longest an assertion can matter, so the server drops them with no sweep', async () => {
    const { config } = await (await jetstreamManager(nc)).streams.info('KV_mandate_assertion_ids');
    expect(config.max_age).toBe(nanos(ASSERTION_ID_RETENTION_MS));
    expect(await guard.sweep()).toBe(0);
  });

  it('refuses an assertion that stays valid longer than its id is remembered (an iat in the future)', async () => {
    const farOff = seconds(nowMs) + 3_600;
    const error = await guard.firstUse(acme, 'report-agent', 'jti-far', farOff).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).details).toEqual({ reason: 'assertion_lifetime_too_long' });
  });
});
