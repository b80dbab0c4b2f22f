import { context, metrics, SpanKind, SpanStatusCode, trace, type Histogram } from '@opentelemetry/api';
import { Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { lastValueFrom } from 'rxjs';
import {
  ERROR_STATUS,
  MandateError,
  endpointsBySubject,
  errorReply,
  idempotencyKeySchema,
  okReply,
  REQUEST_HEADERS,
  parseOrThrow,
  type EndpointContract,
} from '@mandate/contracts';
import { contextWithValidSpan, extractTraceContext, traceIds, type Logger } from '@mandate/telemetry';
import { MandateRpcContext } from './rpc-context.js';
import { finishRequestIdempotency, withRequestIdempotency } from '../request-idempotency.js';

export interface ServiceTransportOptions {
  connection: NatsConnection;
  /** Service name, e.g. `vault`; the NATS service and queue group are `mandate-<name>`. */
  service: string;
  version: string;
  description: string;
  /** Every operation this service answers; a handler without a contract refuses to start. */
  endpoints: readonly EndpointContract[];
  logger: Logger;
  /** How long `close()` waits for in-flight requests. */
  shutdownGraceMs?: number;
}

const tracer = trace.getTracer('@mandate/bus');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A NestJS transport strategy that serves `@MessagePattern(contract.subject)` handlers as
 * endpoints of a NATS micro service (`@nats-io/services`): discoverable with `$SRV.PING/INFO/STATS`,
 * load-shared through a queue group, errors also in `Nats-Service-Error(-Code)` headers.
 * Bodies are plain JSON validated against `libs/contracts`; invalid input never reaches a handler.
 */
export class NatsServiceTransport extends Server implements CustomTransportStrategy {
  readonly #options: ServiceTransportOptions;
  readonly #contracts: ReadonlyMap<string, EndpointContract>;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #callDuration: Histogram;
  #service: Service | undefined;

  constructor(options: ServiceTransportOptions) {
    super();
    this.#options = options;
    this.#contracts = endpointsBySubject(options.endpoints);
    // OpenTelemetry has no proxy meter: instruments must be made after the SDK has started.
    this.#callDuration = metrics.getMeter('@mandate/bus').createHistogram('rpc.server.call.duration', {
      description: 'Duration of request handling per endpoint, including validation',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] },
    });
  }

  get serviceName(): string {
    return `mandate-${this.#options.service}`;
  }

  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      await this.#start();
      callback();
    } catch (error) {
      callback(error);
    }
  }

  async #start(): Promise<void> {
    const handlers = this.getHandlers();
    for (const pattern of handlers.keys()) {
      if (!this.#contracts.has(pattern)) {
        throw new TypeError(`handler for ${pattern} has no endpoint contract in libs/contracts`);
      }
    }
    // @nats-io/services pins its own nats-core pre-release; the connection is the same protocol.
    const svcm = new Svcm(this.#options.connection as unknown as ConstructorParameters<typeof Svcm>[0]);
    const service = await svcm.add({
      name: this.serviceName,
      version: this.#options.version,
      description: this.#options.description,
      queue: this.serviceName,
      metadata: { 'mandate.service': this.#options.service },
    });
    for (const [subject, contract] of this.#contracts) {
      const handler = handlers.get(subject);
      if (!handler) {
        this.#options.logger.warn({ subject }, 'endpoint contract has no handler in this service; not served');
        continue;
      }
      service.addEndpoint(contract.operation, {
        subject,
        metadata: { description: contract.description },
        handler: (error, msg) => this.#onMessage(contract, handler, error, msg),
      });
    }
    this.#service = service;
    // Subscriptions travel to the server asynchronously: once this round trip is back, the server
    // has them, so "listening" means a request sent now finds a responder.
    await this.#options.connection.flush();
  }

  #onMessage(contract: EndpointContract, handler: MessageHandler, error: Error | null, msg: ServiceMsg): void {
    if (error) {
      this.#options.logger.error({ err: error, subject: contract.subject }, 'subscription error');
      return;
    }
    // @nats-io/services does not catch a handler's async errors: #process never rejects.
    const running = this.#process(contract, handler, msg);
    this.#inFlight.add(running);
    void running.finally(() => this.#inFlight.delete(running));
  }

  async #process(contract: EndpointContract, handler: MessageHandler, msg: ServiceMsg): Promise<void> {
    const started = performance.now();
    const parent = contextWithValidSpan(extractTraceContext(msg.headers));
    const span = tracer.startSpan(`${contract.subject} process`, {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'nats', 'rpc.service': contract.service, 'rpc.method': contract.operation },
    }, parent);
    const traced = span.isRecording() ? trace.setSpan(parent, span) : parent;
    const ids = traceIds(traced) ?? { traceId: '', spanId: '' };
    let outcome = 'ok';
    let active = traced;
    try {
      const request = parseOrThrow(contract.request, parseJson(msg.data));
      active = withIdempotencyOf(msg, contract.subject, traced);
      const rpcContext = new MandateRpcContext([{ subject: contract.subject, headers: msg.headers, ...ids }]);
      const result = await context.with(active, async () =>
        lastValueFrom(this.transformToObservable(await handler(request, rpcContext)), { defaultValue: undefined }),
      );
      const response = contract.response.safeParse(result);
      if (!response.success) {
        throw new MandateError('internal', 'the service produced a reply outside its contract', { cause: response.error });
      }
      msg.respond(encoder.encode(JSON.stringify(okReply(response.data))));
    } catch (thrown) {
      const error = this.#toMandateError(thrown, contract);
      outcome = error.code;
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.setAttribute('mandate.error.code', error.code);
      // A header value cannot hold a line break (the client would reject the reply, and the caller time out); the body keeps the message whole.
      msg.respondError(ERROR_STATUS[error.code], error.message.replace(/[\r\n]+/g, ' '), encoder.encode(JSON.stringify(errorReply(error.toWire()))));
    } finally {
      finishRequestIdempotency(active);
      span.end();
      this.#callDuration.record((performance.now() - started) / 1000, {
        'rpc.system': 'nats',
        'rpc.service': contract.service,
        'rpc.method': contract.operation,
        'mandate.outcome': outcome,
      });
    }
  }

  #toMandateError(thrown: unknown, contract: EndpointContract): MandateError {
    if (thrown instanceof MandateError) {
      if (thrown.code === 'internal') {
        this.#options.logger.error({ err: thrown.cause ?? thrown, subject: contract.subject }, thrown.message);
      }
      return thrown;
    }
    // Unknown errors may carry anything in their message; the caller gets a generic one.
    this.#options.logger.error({ err: thrown, subject: contract.subject }, 'unhandled error in handler');
    return new MandateError('internal', 'internal error', { cause: thrown });
  }

  /** Stops taking requests, then waits (bounded) for the ones in flight to be answered. */
  async close(): Promise<void> {
    const service = this.#service;
    this.#service = undefined;
    if (service && !service.isStopped) await service.stop();
    if (this.#inFlight.size === 0) return;
    const grace = this.#options.shutdownGraceMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), grace);
    });
    const result = await Promise.race([Promise.allSettled([...this.#inFlight]).then(() => 'done' as const), expired]);
    clearTimeout(timer);
    if (result === 'expired') {
      this.#options.logger.warn({ pending: this.#inFlight.size }, 'shutdown grace period over with requests still in flight');
    }
  }

  on(): never {
    throw new TypeError('NatsServiceTransport does not emit events; watch the NATS connection status instead');
  }

  unwrap<T>(): T {
    if (!this.#service) throw new TypeError('the service is not listening');
    return this.#service as T;
  }
}

/** The request's idempotency key, if it sent one, in the context its writes take their ids from. */
function withIdempotencyOf(msg: ServiceMsg, subject: string, ctx: ReturnType<typeof context.active>) {
  const key = msg.headers?.get(REQUEST_HEADERS.idempotencyKey);
  if (!key) return ctx;
  const parsed = idempotencyKeySchema.safeParse(key);
  if (!parsed.success) {
    throw new MandateError('invalid_request', `the ${REQUEST_HEADERS.idempotencyKey} header is not a valid idempotency key`, {
      issues: [{ path: `(header ${REQUEST_HEADERS.idempotencyKey})`, message: parsed.error.issues[0]?.message ?? 'invalid' }],
    });
  }
  return withRequestIdempotency(ctx, parsed.data, subject, msg.data);
}

function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    throw new MandateError('invalid_request', 'request body must be a JSON document', {
      issues: [{ path: '(root)', message: 'not valid JSON' }],
    });
  }
}
