import { randomUUID } from 'node:crypto';
import { AuthorizationError, type NatsConnection } from '@nats-io/transport-node';
import type { JWK } from 'jose';
import { BusClient, connectToBus } from '@mandate/bus/client';
import {
  apiKeyEndpoint,
  oauth2TokenEndpoint,
  tokenForJwtEndpoint,
  tokenForUserEndpoint,
  tokenForWorkloadEndpoint,
  MandateError,
  type EndpointContract,
  type RequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { signClientAssertion } from '@mandate/wat';

/** Who the client acts as: a tenant and one workload identity in it. */
export interface MandateClientIdentity {
  /** The tenant the workload lives in. */
  tenant: string;
  /** The workload name registered in the directory. */
  workload: string;
}

/** Options of {@link MandateClient}'s constructor. */
export interface MandateClientOptions extends MandateClientIdentity {
  /** How long to wait for a service's reply (default 10 s); on expiry a call fails with `unavailable`. */
  requestTimeoutMs?: number;
  /** The authorizer's identifier, the `aud` of client assertions (default `urn:mandate:authorizer`). */
  audience?: string;
  /** The clock the WAT cache decides by, for tests (milliseconds since the epoch). */
  now?: () => number;
  /**
   * How a call that failed `unavailable` (no replica answered in time, none is running) is tried
   * again: each call has one idempotency key, sent on every attempt, so a retry after a lost reply
   * releases the same credential under one `succeeded` record. Attempts start while less than
   * `forMs` (default 10 s: a cluster's leader election) has passed since the first; the first
   * retry 250 ms after a failure, each next twice as late, at most 2 s. `forMs: 0` turns retries off.
   */
  retry?: { forMs?: number; firstDelayMs?: number };
}

/** Options of {@link MandateClient.connect}: the NATS connection and who the client acts as. */
export interface MandateConnectOptions extends MandateClientOptions {
  /** One or more `nats://host:port` URLs (a comma-separated string is accepted). */
  servers: string | string[];
  /** The connection name NATS shows; defaults to the workload name. */
  name?: string;
  /** NATS user and password, where the server requires them. */
  user?: string;
  password?: string;
}

/** The workload's private key: it signs client assertions and never leaves the process. */
export interface WorkloadKeyOptions {
  /** The private JWK (with the `kid` it is registered under in the directory). */
  privateJwk: JWK;
}

/** What `oauth2Token` asks the vault for (the request of `mandate.vault.v1.oauth2-token` minus the tenant). */
export type OAuth2TokenOptions = Omit<RequestOf<typeof oauth2TokenEndpoint>, 'tenant' | 'scopes' | 'forceAuthentication'> & {
  /** Scopes to ask for; none means the provider's default scopes. */
  scopes?: string[];
  /** Ignore a stored token and ask the person again. */
  forceAuthentication?: boolean;
};

/** An access token from the vault: hand it to the tool that needs it, nowhere else. */
export type AccessToken = ResponseOf<typeof oauth2TokenEndpoint>;

/** The longest wait between two attempts of one call. */
const MAX_RETRY_DELAY_MS = 2_000;

/** A cached WAT is reused until this long before it expires. */
export const WAT_REUSE_MARGIN_MS = 60_000;

/**
 * Agent code's handle on Mandate, over NATS: workload access tokens (WATs) from the authorizer,
 * OAuth2 access tokens and API keys from the vault. Every failure is a `MandateError` whose
 * `code` is one of the closed set (`access_denied`, `consent_required`, `unavailable`, …), with
 * `details` where the service gave some.
 *
 * Credentials it returns are for the code that calls a tool, never for a language model: do not
 * put them into a prompt, a tool result or a log a model reads.
 *
 * @example
 * ```ts
 * const mandate = await MandateClient.connect({ servers: 'nats://127.0.0.1:4222', tenant: 'acme', workload: 'report-agent' });
 * const wat = await mandate.workloadToken({ privateJwk });
 * const { accessToken } = await mandate.oauth2Token({ workloadToken: wat, provider: 'reporting', flow: 'M2M' });
 * ```
 */
export class MandateClient {
  /** The tenant every request names. */
  readonly tenant: string;
  /** The workload this client acts as. */
  readonly workload: string;
  /** The NATS connection (used to wait for consent events). */
  readonly connection: NatsConnection;
  readonly #bus: BusClient;
  #ownsConnection = false;
  readonly #audience: string | undefined;
  readonly #now: () => number;
  readonly #retry: { forMs: number; firstDelayMs: number };
  #cachedWat: { token: string; expiresAtMs: number; kid: string | undefined } | undefined;
  #minting: Promise<string> | undefined;

  /** Wraps a connection the caller already has (and keeps owning: {@link close} leaves it open). */
  constructor(connection: NatsConnection, options: MandateClientOptions) {
    this.connection = connection;
    this.tenant = options.tenant;
    this.workload = options.workload;
    this.#bus = new BusClient(connection, { defaultTimeoutMs: options.requestTimeoutMs ?? 10_000 });
    this.#audience = options.audience;
    this.#now = options.now ?? Date.now;
    this.#retry = { forMs: Math.max(0, options.retry?.forMs ?? 10_000), firstDelayMs: options.retry?.firstDelayMs ?? 250 };
  }

  /**
   * Connects to NATS (reconnecting for ever after the first success) and returns a client that
   * owns the connection. NATS out of reach is a `MandateError` `unavailable`, NATS refusing the
   * user or password one `unauthenticated`; neither message holds the password.
   */
  static async connect(options: MandateConnectOptions): Promise<MandateClient> {
    const { servers, name, user, password, ...clientOptions } = options;
    const connection = await connectToBus({ servers, name: name ?? options.workload, user, password }).catch((cause: unknown) => {
      throw connectFailure(servers, cause);
    });
    const client = new MandateClient(connection, clientOptions);
    client.#ownsConnection = true;
    return client;
  }

  /**
   * A WAT for this workload alone (two-legged): signs an RFC 7523 client assertion with the
   * private key and sends only the assertion. The WAT is cached and handed out again until 60 s
   * before it expires; concurrent callers share one request.
   */
  async workloadToken(options: WorkloadKeyOptions): Promise<string> {
    const kid = options.privateJwk.kid;
    const cached = this.#cachedWat;
    if (cached && cached.kid === kid && cached.expiresAtMs - WAT_REUSE_MARGIN_MS > this.#now()) return cached.token;
    this.#minting ??= this.#mintWorkloadToken(options).finally(() => {
      this.#minting = undefined;
    });
    return this.#minting;
  }

  async #mintWorkloadToken(options: WorkloadKeyOptions): Promise<string> {
    const minted = await this.#call(tokenForWorkloadEndpoint, async () => ({ tenant: this.tenant, workload: this.workload, clientAssertion: await this.#assertion(options) }));
    this.#cachedWat = { token: minted.token, expiresAtMs: Date.parse(minted.expiresAt), kid: options.privateJwk.kid };
    return minted.token;
  }

  /**
   * A WAT binding this workload to the user of an IdP JWT, which must pass the workload's
   * authorizer config; the workload proves itself with a client assertion signed with its key.
   */
  async tokenForJwt(userJwt: string, options: WorkloadKeyOptions): Promise<string> {
    const userToken = userJwt.replace(/^Bearer\s+/i, '');
    return (await this.#call(tokenForJwtEndpoint, async () => ({ tenant: this.tenant, workload: this.workload, userToken, clientAssertion: await this.#assertion(options) }))).token;
  }

  /** A WAT for a bare user id; only for workloads registered with `allowUserIdTokens` (trusted back ends). */
  async tokenForUser(userId: string, options: WorkloadKeyOptions): Promise<string> {
    return (await this.#call(tokenForUserEndpoint, async () => ({ tenant: this.tenant, workload: this.workload, userId, clientAssertion: await this.#assertion(options) }))).token;
  }

  /**
   * An OAuth2 access token from the vault: `M2M` (client credentials) or `USER_FEDERATION` (the
   * user's token, the WAT must be bound to a user). Without consent it fails with
   * `consent_required` and `details: { sessionId, authorizationUrl, status }`; `withAccessToken`
   * handles that for you.
   */
  async oauth2Token(options: OAuth2TokenOptions): Promise<AccessToken> {
    const { scopes, forceAuthentication, ...rest } = options;
    const request = { ...rest, tenant: this.tenant, scopes: scopes ?? [], forceAuthentication: forceAuthentication ?? false };
    return this.#call(oauth2TokenEndpoint, () => request);
  }

  /** The API key of a provider that lists this workload. */
  async apiKey(options: { workloadToken: string; provider: string }): Promise<string> {
    const request = { tenant: this.tenant, workloadToken: options.workloadToken, provider: options.provider };
    return (await this.#call(apiKeyEndpoint, () => request)).apiKey;
  }

  /** Forgets the cached WAT and, if {@link connect} opened the connection, drains and closes it. */
  async close(): Promise<void> {
    this.#cachedWat = undefined;
    if (this.#ownsConnection && !this.connection.isClosed()) await this.connection.drain();
  }

  /**
   * One logical call: retried on `unavailable` with the same idempotency key. The payload is made
   * per attempt, since a client assertion is accepted once and a retry must sign a new one.
   */
  async #call<E extends EndpointContract>(endpoint: E, payload: () => RequestOf<E> | Promise<RequestOf<E>>): Promise<ResponseOf<E>> {
    const idempotencyKey = randomUUID();
    const started = Date.now();
    for (let delay = this.#retry.firstDelayMs; ; delay = Math.min(2 * delay, MAX_RETRY_DELAY_MS)) {
      try {
        return await this.#bus.request(endpoint, await payload(), { idempotencyKey });
      } catch (error) {
        const retryable = error instanceof MandateError && error.code === 'unavailable' && !this.connection.isClosed();
        if (!retryable || Date.now() + delay - started >= this.#retry.forMs) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  #assertion(options: WorkloadKeyOptions): Promise<string> {
    return signClientAssertion({ workload: this.workload, privateJwk: options.privateJwk, audience: this.#audience });
  }
}

function connectFailure(servers: string | string[], cause: unknown): MandateError {
  // A password in a URL (nats://user:pass@host) stays out of the message.
  const where = (Array.isArray(servers) ? servers.join(',') : servers).replace(/\/\/[^/@,\s]*@/g, '//***@');
  const reason = cause instanceof Error ? cause.message : String(cause);
  if (cause instanceof AuthorizationError) return new MandateError('unauthenticated', `NATS at ${where} refused the connection: ${reason}`, { cause });
  return new MandateError('unavailable', `cannot reach NATS at ${where}: ${reason}`, { cause });
}
