import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RequestOne } from '@nats-io/nats-core/internal';
import { errors, type NatsConnection } from '@nats-io/transport-node';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { connectToBus } from './connection.js';
import { patchSettledRequests } from './settled-request-patch.js';

describe('the settled-request patch of nats-core', () => {
  it('settles a request without rejecting it afterwards with a new error, and still frees its subscription', () => {
    patchSettledRequests();
    const mux = { cancel: vi.fn() };
    const request = new RequestOne(mux as never, 'subject', { timeout: 1_000 }, false) as unknown as {
      deferred: { resolve: (v: unknown) => void; reject: (e: unknown) => void };
      timer: { cancel(): void };
      resolver(err: Error | null, msg: unknown): void;
      cancel(err?: Error): void;
    };
    const resolve = vi.spyOn(request.deferred, 'resolve');
    const reject = vi.spyOn(request.deferred, 'reject');
    request.resolver(null, { data: new Uint8Array() });
    expect(resolve).toHaveBeenCalledTimes(1);
    expect(reject).not.toHaveBeenCalled();
    expect(mux.cancel).toHaveBeenCalledTimes(1);
    // A cancel from anywhere else (a timeout, a failed publish) still rejects, as before.
    request.cancel();
    expect(reject).toHaveBeenCalledTimes(1);
  });

  describe.skipIf(natsServerMissing('requests after the patch'))('against a real nats-server', () => {
    let nats: NatsServerHandle;
    let nc: NatsConnection;
    beforeAll(async () => {
      nats = await startNatsServer();
      nc = await connectToBus({ servers: nats.url, name: 'patch-test' });
      nc.subscribe('echo', { callback: (_e, msg) => void msg.respond(msg.data) });
    });
    afterAll(async () => {
      await nc?.close();
      await nats?.stop();
    });

    it('answers, times out and reports no responders exactly as before', async () => {
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => nc.request('echo', String(i), { timeout: 2_000 })));
      expect(replies.map((m) => m.string())).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
      nc.subscribe('silent', { callback: () => undefined });
      await expect(nc.request('silent', '', { timeout: 100 })).rejects.toBeInstanceOf(errors.TimeoutError);
      const noOne = await nc.request('nobody.home', '', { timeout: 1_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(noOne).toBeInstanceOf(errors.RequestError);
      expect((noOne as InstanceType<typeof errors.RequestError>).isNoResponders()).toBe(true);
    });
  });
});
