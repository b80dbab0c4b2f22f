import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectToBus } from '@mandate/bus';
import { EnvelopeCipher, KeyRing } from '@mandate/crypto';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { SigningKeyRing } from './signing-key-ring.js';
import { SigningKeyRepository } from './stored-ring.js';

const missing = natsServerMissing('signing key ring on JetStream KV');

const HOUR = 3_600_000;
const MINUTE = 60_000;
const WAT_RING = { collection: 'signing-keys', ring: 'wat-ring' };

describe.skipIf(missing)('a signing key ring (frozen clock, real JetStream KV)', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const cipher = new EnvelopeCipher(KeyRing.generate());
  let clock = Date.UTC(2026, 10, 23, 12);

  async function ring(repository?: SigningKeyRepository) {
    const store = repository ?? (await SigningKeyRepository.open(new JetStreamKvStore(nc), WAT_RING));
    const keyRing = new SigningKeyRing({
      store,
      cipher,
      alg: 'EdDSA',
      rotationIntervalMs: 24 * HOUR,
      activationDelayMs: 5 * MINUTE,
      maxTokenLifetimeMs: 15 * MINUTE,
      sealedRecordId: (kid) => `system/test-ring/${kid}`,
      now: () => clock,
    });
    return { keyRing, store };
  }

  // A fresh server per test: the ring is one document per deployment.
  beforeEach(async () => {
    nats = await startNatsServer();
    nc = await connectToBus({ servers: nats.url, name: 'key-ring-test' });
  });

  afterEach(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('creates one key on first start, even when replicas race, and keeps the private key sealed', async () => {
    const { keyRing, store } = await ring();
    const { keyRing: twin } = await ring(store);
    await Promise.all([keyRing.start(), twin.start()]);
    await keyRing.reload();
    expect(keyRing.publicKeys()).toHaveLength(1);
    expect(twin.publicKeys()).toEqual(keyRing.publicKeys());
    expect((await keyRing.signingKey()).kid).toBe((await twin.signingKey()).kid);
    const stored = JSON.stringify(await store.load());
    expect(stored).not.toContain('"d"');
    expect(keyRing.publicKeys()[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    expect(keyRing.publicKeys()[0]).not.toHaveProperty('d');
  });

  it('publishes a new key before it signs, and retires the old one only after its WATs expired', async () => {
    const { keyRing } = await ring();
    await keyRing.start();
    const first = (await keyRing.signingKey()).kid;

    clock += 23 * HOUR;
    expect(await keyRing.rotateIfDue()).toBeUndefined();

    clock += 1 * HOUR;
    const next = await keyRing.rotateIfDue();
    expect(next).toBeDefined();
    // Published at once, signing only after the activation delay.
    expect(keyRing.publicKeys().map((k) => k.kid)).toEqual([first, next!.kid]);
    expect((await keyRing.signingKey()).kid).toBe(first);
    expect(await keyRing.rotateIfDue()).toBeUndefined();

    clock += 5 * MINUTE;
    expect((await keyRing.signingKey()).kid).toBe(next!.kid);

    // The next rotation prunes the first key: its successor has signed longer than any WAT lives.
    clock += 24 * HOUR;
    const third = await keyRing.rotateIfDue();
    expect(keyRing.publicKeys().map((k) => k.kid)).toEqual([next!.kid, third!.kid]);
  });

  it('drops a retired key at the first rotation after its successor has signed longer than anything lives (plus a minute of skew), not before', async () => {
    const { keyRing } = await ring();
    await keyRing.start();
    const first = (await keyRing.signingKey()).kid;
    const second = await keyRing.rotate();
    // The second key signs from here (after the activation delay); tokens the first signed live 15 minutes at most.
    clock = second.activatesAt + 15 * MINUTE + MINUTE - 1;
    const third = await keyRing.rotate();
    expect(keyRing.publicKeys().map((k) => k.kid)).toEqual([first, second.kid, third.kid]);
    clock += 1;
    const fourth = await keyRing.rotate();
    expect(keyRing.publicKeys().map((k) => k.kid)).toEqual([second.kid, third.kid, fourth.kid]);
  });

  it('keeps a retired key while WATs it signed may still be alive', async () => {
    const { keyRing } = await ring();
    await keyRing.start();
    const first = (await keyRing.signingKey()).kid;
    const second = await keyRing.rotate();
    clock += 5 * MINUTE;
    // Rotating again right away: the first key signed until a moment ago, so it stays.
    const third = await keyRing.rotate();
    expect(keyRing.publicKeys().map((k) => k.kid)).toEqual([first, second.kid, third.kid]);
  });
});

describe.skipIf(missing)('rings side by side (real JetStream KV)', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const cipher = new EnvelopeCipher(KeyRing.generate());
  const clock = Date.UTC(2026, 10, 23, 12);

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connectToBus({ servers: nats.url, name: 'key-rings-test' });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const ringAt = async (location: { collection: string; ring: string }, sealedRecordId: (kid: string) => string) =>
    new SigningKeyRing({
      store: await SigningKeyRepository.open(new JetStreamKvStore(nc), location),
      cipher,
      alg: 'ES256',
      rotationIntervalMs: 24 * HOUR,
      activationDelayMs: 0,
      maxTokenLifetimeMs: 5 * MINUTE,
      sealedRecordId,
      now: () => clock,
    });

  it('keeps each ring to its own document, and a sealed key opens only in the ring it was made for', async () => {
    const wat = await ringAt({ collection: 'signing-keys', ring: 'wat-ring' }, (kid) => `system/signing-keys/${kid}`);
    const receipts = await ringAt({ collection: 'receipt-signing-keys', ring: 'receipt-ring' }, (kid) => `system/receipt-signing-keys/${kid}`);
    await Promise.all([wat.start(), receipts.start()]);
    expect(wat.publicKeys()[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(wat.publicKeys().map((k) => k.kid)).not.toEqual(receipts.publicKeys().map((k) => k.kid));
    expect((await receipts.signingKey()).key.type).toBe('private');

    // The receipt ring's document read by a ring that binds its sealed keys to other record ids: they do not open.
    const misplaced = await ringAt({ collection: 'receipt-signing-keys', ring: 'receipt-ring' }, (kid) => `system/signing-keys/${kid}`);
    await misplaced.start();
    expect(misplaced.publicKeys()).toEqual(receipts.publicKeys());
    await expect(misplaced.signingKey()).rejects.toThrow();
  });
});
