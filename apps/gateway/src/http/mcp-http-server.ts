import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, type ElicitRequestURLParams, type ProgressNotification, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { RECEIPT_JWKS_PATH, tenantIdSchema, gatewayNameSchema, type TenantId } from '@mandate/contracts';
import type { JWK } from 'jose';
import { HttpListener } from '@mandate/http';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { contextFromTraceparent, contextWithValidSpan, lazyInstruments, type Logger } from '@mandate/telemetry';
import type { GatewayRegistry, LoadedGateway } from '../domain/gateway-registry.js';
import { InboundRefusal, type InboundAuthentication, type Principal } from '../domain/inbound-authentication.js';
import type { CatalogTool } from '../domain/tool-catalog.js';
import type { ToolCall } from '../domain/tool-call.js';
import type { ToolListing } from '../domain/tool-listing.js';
import { McpSessions } from './mcp-sessions.js';

export interface McpHttpOptions {
  publicUrl: string;
  /** Browser origins besides the public URL's that may call. */
  allowedOrigins: readonly string[];
  maxRequestBytes: number;
  maxSessions: number;
  sessionIdleMs: number;
  version: string;
  logger: Logger;
  /** The receipt signing keys (public halves), served at `/.well-known/jwks.json` for every gateway of the listener. */
  receiptKeys: () => { keys: JWK[] };
  /** Held calls wait for approval: answers then stream (SSE), so progress notifications reach the client while a call waits. */
  approvalWaits?: boolean;
}

const METADATA_PREFIX = '/.well-known/oauth-protected-resource';
/** The JSON-RPC error of a call policy denied (in the range JSON-RPC leaves to servers; documented in docs/gateway.md). */
export const POLICY_DENIED = -32003;

/**
 * MCP requests refused before MCP, by gateway and why. Not audit records: anyone can send them, and
 * a token's refusal is on the authorizer's record already (the gateway passes its resource URL).
 */
const instruments = lazyInstruments('@mandate/gateway', (meter) => ({
  refused: meter.createCounter('mandate.gateway.requests.refused', { description: 'MCP requests refused before MCP, by gateway and reason (no_token, invalid_token, insufficient_scope, unavailable, origin, no_session)' }),
}));

interface CallerOf {
  gateway: LoadedGateway;
  principal: Principal;
  /** Aborted when the client drops the HTTP request before its answer (kept only where calls wait for approval). */
  gone?: AbortSignal;
}

/**
 * The gateways' MCP endpoints, `/mcp/<tenant>/<gateway>` (Streamable HTTP, the official SDK's
 * transport and server), each an OAuth protected resource with its metadata at
 * `/.well-known/oauth-protected-resource/mcp/<tenant>/<gateway>` (RFC 9728). Every request is
 * authenticated before the SDK reads its body; the principal reaches the MCP handlers as the
 * request's auth info. `/.well-known/jwks.json` is the one JWKS of the receipts every gateway of
 * this listener signs (one deployment-wide ring; a receipt's `iss` says which gateway signed it).
 */
export class McpHttpServer {
  readonly #listener = new HttpListener((request, response) => {
    this.#traced(request, () => this.#handle(request, response)).catch((err: unknown) => {
      this.options.logger.error({ err }, 'MCP request failed');
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      else response.end();
    });
  });
  readonly #sessions: McpSessions;
  readonly #origins: ReadonlySet<string>;

  constructor(
    private readonly registry: GatewayRegistry,
    private readonly inbound: InboundAuthentication,
    private readonly listing: ToolListing,
    private readonly calls: ToolCall,
    private readonly options: McpHttpOptions,
  ) {
    this.#sessions = new McpSessions({ maxSessions: options.maxSessions, idleMs: options.sessionIdleMs });
    this.#origins = new Set([new URL(options.publicUrl).origin, ...options.allowedOrigins]);
  }

  listen(port: number, host: string): Promise<string> {
    return this.#listener.listen(port, host);
  }

  async close(): Promise<void> {
    await this.#sessions.closeAll();
    await this.#listener.close();
  }

  /** One trace per HTTP request, continuing the client's `traceparent` when it sent one: the vault, the authorizer and the target join it. */
  async #traced(request: IncomingMessage, work: () => Promise<void>): Promise<void> {
    const traceparent = request.headers.traceparent;
    const parent = contextWithValidSpan(contextFromTraceparent(typeof traceparent === 'string' ? traceparent : undefined));
    const span = trace.getTracer('@mandate/gateway').startSpan(`MCP ${request.method ?? ''}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method ?? '' } }, parent);
    try {
      await context.with(span.isRecording() ? trace.setSpan(parent, span) : parent, work);
    } finally {
      span.end();
    }
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://gateway').pathname;
    if (path === RECEIPT_JWKS_PATH) return this.#jwks(request, response);
    const metadata = path.startsWith(`${METADATA_PREFIX}/`);
    const match = /^\/mcp\/([^/]+)\/([^/]+)$/.exec(metadata ? path.slice(METADATA_PREFIX.length) : path);
    const tenant = tenantIdSchema.safeParse(match?.[1]);
    const name = gatewayNameSchema.safeParse(match?.[2]);
    const gateway = tenant.success && name.success ? await this.registry.get(tenant.data as TenantId, name.data) : undefined;
    if (!gateway) return void response.writeHead(404, { 'content-type': 'text/plain' }).end('no such gateway');
    if (metadata) return this.#metadata(gateway, request, response);
    const origin = request.headers.origin;
    if (origin !== undefined && !this.#origins.has(origin)) {
      instruments().refused.add(1, { gateway: gateway.name, reason: 'origin' });
      return void response.writeHead(403, { 'content-type': 'text/plain' }).end('this origin may not call the gateway');
    }
    let principal: Principal;
    try {
      principal = await this.inbound.principal(gateway, request.headers.authorization);
    } catch (error) {
      if (!(error instanceof InboundRefusal)) throw error;
      instruments().refused.add(1, { gateway: gateway.name, reason: error.error === 'temporarily_unavailable' ? 'unavailable' : (error.error ?? 'no_token') });
      return void response.writeHead(error.status, { 'www-authenticate': this.#challenge(gateway, error), 'content-type': 'application/json' }).end(JSON.stringify({ error: error.error ?? 'unauthorized', error_description: error.message }));
    }
    const gone = this.options.approvalWaits ? goneSignalOf(response) : undefined;
    const caller: CallerOf = { gateway, principal, ...(gone ? { gone } : {}) };
    const auth: AuthInfo = { token: '', clientId: principal.clientId ?? '', scopes: [...principal.scopes], expiresAt: Math.floor(principal.expiresAt / 1000), extra: { caller } };
    (request as IncomingMessage & { auth?: AuthInfo }).auth = auth;
    const sessionId = request.headers['mcp-session-id'];
    const key = `${gateway.tenant}/${gateway.name}`;
    if (typeof sessionId === 'string') {
      const session = this.#sessions.find(sessionId, key, principal.user);
      if (!session) {
        instruments().refused.add(1, { gateway: gateway.name, reason: 'no_session' });
        return void response.writeHead(404, { 'content-type': 'text/plain' }).end('no such MCP session for this user at this gateway');
      }
      return session.transport.handleRequest(request, response);
    }
    if (request.method !== 'POST') return void response.writeHead(405, { allow: 'POST', 'content-type': 'text/plain' }).end('start a session with an initialize POST');
    const server = this.#server(gateway);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      // Each answer as one JSON body: the gateway sends nothing else while a call runs (consent comes back as an error), and a large tools/list reads faster so.
      // Unless held calls wait for approval: a waiting call sends progress on its response stream.
      enableJsonResponse: !this.options.approvalWaits,
      maxRequestBodySize: this.options.maxRequestBytes,
      onsessioninitialized: (id) => this.#sessions.add(id, { server, transport, gateway: key, user: principal.user }),
      onsessionclosed: (id) => this.#sessions.forget(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) this.#sessions.forget(transport.sessionId);
    };
    await server.connect(transport);
    await transport.handleRequest(request, response);
  }

  /** One MCP server per session; the tools it shows are decided per request, for that request's principal. */
  #server(gateway: LoadedGateway): Server {
    const server = new Server({ name: `mandate-gateway/${gateway.name}`, version: this.options.version }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
      const caller = callerOf(extra.authInfo);
      return { tools: this.listing.list(caller.gateway, caller.principal).map(asMcpTool) };
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const caller = callerOf(extra.authInfo);
      const answer = await this.calls.call({
        gateway: caller.gateway,
        principal: caller.principal,
        name: request.params.name,
        arguments: request.params.arguments ?? {},
        urlElicitation: server.getClientCapabilities()?.elicitation?.url !== undefined,
        progress: progressOf(request.params._meta?.progressToken, extra.sendNotification),
        signal: caller.gone ? AbortSignal.any([extra.signal, caller.gone]) : extra.signal,
      });
      switch (answer.kind) {
        case 'unknown_tool':
          throw new ProtocolError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
        case 'consent': {
          const elicitation: ElicitRequestURLParams = { mode: 'url', message: answer.message, url: answer.url, elicitationId: randomUUID() };
          throw new ProtocolError(ErrorCode.UrlElicitationRequired, 'The user must open a URL first', { elicitations: [elicitation] });
        }
        case 'policy_denied':
          throw new ProtocolError(POLICY_DENIED, answer.message, { decision: 'deny', ...(answer.policy ? { policySet: answer.policy.name, version: answer.policy.version, determiningPolicies: answer.policy.determining } : {}) });
        case 'result':
          return answer.result;
      }
    });
    return server;
  }

  #metadata(gateway: LoadedGateway, request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
    const body = {
      resource: gateway.resourceUrl,
      authorization_servers: gateway.authorizationServers,
      scopes_supported: gateway.scopesSupported,
      bearer_methods_supported: ['header'],
      resource_name: `Mandate gateway ${gateway.name}`,
      jwks_uri: `${this.options.publicUrl}${RECEIPT_JWKS_PATH}`,
    };
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300', 'access-control-allow-origin': '*' }).end(JSON.stringify(body));
  }

  /** Public keys only; short-lived in caches, and a verifier meeting an unknown kid fetches again. */
  #jwks(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'GET' && request.method !== 'HEAD') return void response.writeHead(405, { allow: 'GET, HEAD' }).end();
    const body = JSON.stringify(this.options.receiptKeys());
    response.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  /** RFC 6750 §3 with RFC 9728's `resource_metadata`; quoted values are kept to characters that need no escaping. */
  #challenge(gateway: LoadedGateway, refusal: InboundRefusal): string {
    const quoted = (value: string) => `"${value.replace(/[^\x20-\x7e]|["\\]/g, '')}"`;
    const metadataUrl = `${this.options.publicUrl}${METADATA_PREFIX}/mcp/${gateway.tenant}/${gateway.name}`;
    const parameters = [`resource_metadata=${quoted(metadataUrl)}`];
    if (refusal.error) parameters.push(`error=${quoted(refusal.error)}`, `error_description=${quoted(refusal.message)}`);
    if (refusal.scope) parameters.push(`scope=${quoted(refusal.scope)}`);
    return `Bearer ${parameters.join(', ')}`;
  }
}

/**
 * An error the SDK answers with as it is: its code, message and data. (The SDK's `McpError`
 * prefixes its message with the code, which the client's `McpError` then prefixes again.)
 */
class ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/**
 * The SDK aborts a request's signal on `notifications/cancelled` or when its session closes, not
 * when the client's connection drops (a crash, a lost network): a call waiting for approval would
 * wait its bound out and then run for nobody.
 */
function goneSignalOf(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}

function callerOf(auth: AuthInfo | undefined): CallerOf {
  const caller = auth?.extra?.['caller'] as CallerOf | undefined;
  if (!caller) throw new TypeError('an MCP request reached a handler without its caller');
  return caller;
}

function asMcpTool(tool: CatalogTool): Tool {
  return {
    name: tool.name,
    ...(tool.title !== undefined ? { title: tool.title } : {}),
    ...(tool.description !== undefined ? { description: tool.description } : {}),
    inputSchema: tool.inputSchema,
    ...(tool.outputSchema ? { outputSchema: tool.outputSchema } : {}),
    ...(tool.annotations ? { annotations: tool.annotations } : {}),
  } as Tool;
}

/** MCP progress for one call, when its client gave a token: milliseconds waited of the bound, always increasing as the spec asks. */
function progressOf(token: string | number | undefined, send: (notification: ProgressNotification) => Promise<void>) {
  if (token === undefined) return undefined;
  let last = -1;
  return async (elapsedMs: number, totalMs: number, message: string) => {
    last = Math.max(last + 1, Math.round(elapsedMs));
    await send({ method: 'notifications/progress', params: { progressToken: token, progress: last, total: totalMs, message } });
  };
}
