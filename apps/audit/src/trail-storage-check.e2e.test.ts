import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { jetstreamManager } from '@nats-io/jetstream';
import { AUDIT_TRAIL_STREAM } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startAuditHarness, type AuditHarness } from './testing/harness.js';

const missing = natsServerMissing('the audit service watching how its trail is stored');

describe.skipIf(missing)('the audit service, when someone gives the trail stream a limit while it runs', { timeout: 30_000 }, () => {
  let h: AuditHarness;
  const lines: string[] = [];

  beforeAll(async () => {
    const logTo = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    h = await startAuditHarness({ AUDIT_DIGEST_INTERVAL_SECONDS: '1' }, { logTo });
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('says so at its next digest round, naming the limit, and goes on chaining', async () => {
    await h.publish('watched');
    await h.waitForSequence('watched', 1);
    const jsm = await jetstreamManager(h.nc);
    const { config } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
    expect(lines.some((line) => line.includes('not kept whole'))).toBe(false);
    await jsm.streams.update(AUDIT_TRAIL_STREAM.name, { ...config, max_msgs_per_subject: 100_000 });
    await expect
      .poll(() => lines.map((line) => JSON.parse(line) as { level: number; msg: string; problem?: string }).find((line) => line.msg.includes('not kept whole')), { timeout: 10_000 })
      .toMatchObject({ level: 50, problem: expect.stringContaining('at most 100000 messages a subject are kept') });
    await h.publish('watched');
    await h.waitForSequence('watched', 2);
  });
});
