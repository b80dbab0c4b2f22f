import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { errors, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  idempotencyKeySchema,
  MandateError,
  parseOrThrow,
  replyEnvelopeSchema,
  REQUEST_HEADERS,
  type EndpointContract,
  type RequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { contextWithValidSpan, injectTraceContext } from '@mandate/telemetry/context';

export interface RequestOptions {
  /** How long to wait for a reply; on expiry the call fails with `unavailable`. */
  timeoutMs?: number;
  /**
   * The same key on every retry of one logical request (see `REQUEST_HEADERS.idempotencyKey`):
   * the service then writes each audit record and event of it once, however often it is retried.
   */
  idempotencyKey?: string;
}

const tracer = trace.getTracer('@mandate/bus');
/** Building a zod schema is costly; one envelope schema per endpoint, made on first use. */
const envelopeSchemas = new WeakMap<EndpointContract, ReturnType<typeof replyEnvelopeSchema>>();

function envelopeSchemaOf(endpoint: EndpointContract) {
  let schema = envelopeSchemas.get(endpoint);
  if (!schema) {
    schema = replyEnvelopeSchema(endpoint.response);
    envelopeSchemas.set(endpoint, schema);
  }
  return schema;
}
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The typed client side of the bus. Requests are validated before they leave, replies after they
 * arrive; every failure becomes a `MandateError` with a code from the closed set.
 */
export class BusClient {
  readonly #nc: NatsConnection;
  readonly #defaultTimeoutMs: number;

  constructor(nc: NatsConnection, options: { defaultTimeoutMs?: number } = {}) {
    this.#nc = nc;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 5_000;
  }

  async request<E extends EndpointContract>(endpoint: E, payload: RequestOf<E>, options: RequestOptions = {}): Promise<ResponseOf<E>> {
    const body = parseOrThrow(endpoint.request, payload);
    const idempotencyKey = options.idempotencyKey === undefined ? undefined : parseOrThrow(idempotencyKeySchema, options.idempotencyKey, 'idempotency key');
    const parent = contextWithValidSpan(context.active());
    const span = tracer.startSpan(`${endpoint.subject} send`, { kind: SpanKind.CLIENT, attributes: rpcAttributes(endpoint) }, parent);
    // A non-recording span from a no-op tracer has an invalid context; keep the parent's then.
    const spanContext = span.isRecording() ? trace.setSpan(parent, span) : parent;
    try {
      const headers = natsHeaders();
      injectTraceContext(spanContext, headers);
      if (idempotencyKey) headers.set(REQUEST_HEADERS.idempotencyKey, idempotencyKey);
      const reply = await this.#send(endpoint, encoder.encode(JSON.stringify(body)), headers, options.timeoutMs ?? this.#defaultTimeoutMs);
      const envelope = this.#parseReply(endpoint, reply);
      if (!envelope.ok) throw MandateError.fromWire(envelope.error);
      return envelope.result as ResponseOf<E>;
    } catch (error) {
      if (error instanceof MandateError) span.setAttribute('mandate.error.code', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  }

  async #send(endpoint: EndpointContract, data: Uint8Array, headers: ReturnType<typeof natsHeaders>, timeout: number) {
    try {
      return await this.#nc.request(endpoint.subject, data, { timeout, headers });
    } catch (error) {
      throw transportError(endpoint, error);
    }
  }

  #parseReply(endpoint: EndpointContract, reply: { data: Uint8Array }) {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(reply.data));
    } catch (cause) {
      throw new MandateError('internal', `${endpoint.service} sent a reply that is not JSON`, { cause });
    }
    const parsed = envelopeSchemaOf(endpoint).safeParse(json);
    if (!parsed.success) {
      throw new MandateError('internal', `${endpoint.service} sent a reply that does not match the contract`, { cause: parsed.error });
    }
    return parsed.data;
  }
}

/**
 * What a failed request says, in the caller's words: nobody serves the endpoint, nobody answered in
 * time, or the bus itself failed (all `unavailable`: try again later); or this connection's NATS
 * user may not send it (`access_denied`: no retry helps, the deployment's permissions decide).
 */
function transportError(endpoint: EndpointContract, error: unknown): MandateError {
  if (error instanceof errors.RequestError && error.isNoResponders()) {
    return new MandateError('unavailable', `no ${endpoint.service} service is running for ${endpoint.operation}`, { cause: error });
  }
  if (error instanceof errors.NoRespondersError) {
    return new MandateError('unavailable', `no ${endpoint.service} service is running for ${endpoint.operation}`, { cause: error });
  }
  if (error instanceof errors.TimeoutError || (error instanceof errors.RequestError && error.cause instanceof errors.TimeoutError)) {
    return new MandateError('unavailable', `${endpoint.service} did not answer ${endpoint.operation} in time`, { cause: error });
  }
  if (error instanceof errors.PermissionViolationError || (error instanceof errors.RequestError && error.cause instanceof errors.PermissionViolationError)) {
    return new MandateError('access_denied', `this connection's NATS user may not call ${endpoint.service} ${endpoint.operation} (the bus refused to carry it: a permissions violation for ${endpoint.subject})`, { cause: error });
  }
  return new MandateError('unavailable', `could not reach ${endpoint.service}: the bus connection failed`, { cause: error });
}

function rpcAttributes(endpoint: EndpointContract) {
  return { 'rpc.system': 'nats', 'rpc.service': endpoint.service, 'rpc.method': endpoint.operation, 'messaging.destination.name': endpoint.subject };
}
