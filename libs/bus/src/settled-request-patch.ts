import { RequestOne } from '@nats-io/nats-core/internal';

/*
 * nats-core 3.4's RequestOne.resolver() settles the request's promise, then calls cancel(), which
 * rejects that already-settled promise with a brand-new RequestError("cancelled"): a no-op that
 * still captures a stack trace, after every successful request. In the audit service that was
 * 17% of the CPU, plus the garbage. Here cancel() skips building that error when resolver() calls
 * it: the promise is settled by then, so nothing observable changes. Any other cancel() (a
 * timeout, a failed publish) runs as before. Remove once nats-core stops doing it.
 */
interface RequestInternals {
  resolver(err: Error | null, msg: unknown): void;
  cancel(err?: Error): void;
  timer?: { cancel(): void };
  mux: { cancel(request: unknown): void };
  [SETTLING]?: boolean;
}

const SETTLING = Symbol('mandate.settling');
const PATCHED = Symbol.for('mandate.nats-settled-request-patch');

export function patchSettledRequests(): void {
  const proto = RequestOne.prototype as unknown as RequestInternals & Record<symbol, unknown>;
  if (proto[PATCHED]) return;
  const { resolver, cancel } = proto;
  proto.resolver = function (this: RequestInternals, err, msg) {
    this[SETTLING] = true;
    try {
      resolver.call(this, err, msg);
    } finally {
      this[SETTLING] = false;
    }
  };
  proto.cancel = function (this: RequestInternals, err) {
    if (err === undefined && this[SETTLING]) {
      this.timer?.cancel();
      this.mux.cancel(this);
      return;
    }
    cancel.call(this, err);
  };
  proto[PATCHED] = true;
}
