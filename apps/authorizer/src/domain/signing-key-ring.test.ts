import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectToBus } from '@mandate/bus';
import { EnvelopeCipher, KeyRing } from '@mandate/crypto';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { SigningKeyRepository } from '../store/signing-key-repository.js';
import { SigningKeyRing } from './signing-key-ring.js';

const missing = natsServerMissing('WAT signing key ring on JetStream KV');

const HOUR = 3_600_000;
const MINUTE = 60_000;

describe.skipIf(missing)('the WAT signing key ring (frozen clock, real JetStream KV)', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const cipher = new EnvelopeCipher(KeyRing.generate());
  let clock = Date.UTC(2026, 10, 23, 12);

  async function ring(repository?: SigningKeyRepository) {
    const store = repository ?? (await SigningKeyRepository.open(new JetStreamKvStore(nc)));
    const keyRing = new SigningKeyRing({
      store,
      cipher,
      alg: 'EdDSA',
      rotationIntervalMs: 24 * HOUR,
      activationDelayMs: 5 * MINUTE,
      maxTokenLifetimeMs: 15 * MINUTE,
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
