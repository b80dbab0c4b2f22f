import { createHash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, ErrorCode, McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { discoveredToolSchema, RECEIPT_META_KEY, type DiscoveredTool } from '@mandate/contracts';
import { fetchWithRequestSignals } from '@mandate/http';
import { traceparentOf } from '@mandate/telemetry';
import { UpstreamFailure, type CallEvidence, type ToolResult } from '../domain/upstream.js';

/** A target as the gateway's records name it. */
export interface TargetRef {
  tenant: string;
  gateway: string;
  target: string;
}

export interface UpstreamMcpOptions {
  maxResultBytes: number;
  /** A target said its tools changed (`notifications/tools/list_changed`). */
  onToolsChanged?: (target: TargetRef) => void;
  /** Connections kept open at most; the least recently used is closed first. */
  maxClients?: number;
  version: string;
}

/**
 * Upstream MCP servers through the official SDK client over Streamable HTTP. One connection per
 * target and credential is kept open and reused (an `initialize` per call would double the
 * latency); one that fails is dropped, so the next call connects again. Every request carries the
 * W3C `traceparent` of the call, and a response larger than the limit is refused unread.
 */
export class UpstreamMcp {
  readonly #clients = new Map<string, Promise<Client>>();
  /** The targets each connection serves, so a change it announces reaches each of them. */
  readonly #targets = new Map<string, Map<string, TargetRef>>();

  constructor(private readonly options: UpstreamMcpOptions) {}

  async tools(url: string, headers: Record<string, string>, timeoutMs: number, target?: TargetRef): Promise<DiscoveredTool[]> {
    return this.#use(url, headers, timeoutMs, target, async (client) => {
      const tools: DiscoveredTool[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor ? { cursor } : {}, { timeout: timeoutMs });
        for (const tool of page.tools) {
          const parsed = discoveredToolSchema.safeParse(tool);
          if (!parsed.success) throw new UpstreamFailure('malformed', `the target listed a tool the gateway cannot use (${tool.name})`);
          tools.push(parsed.data);
        }
        cursor = page.nextCursor;
      } while (cursor && tools.length < 10_000);
      return tools;
    });
  }

  /** The call's receipt goes in the request's `_meta` (MCP's place for what is about a request rather than its arguments). */
  async callTool(url: string, headers: Record<string, string>, tool: string, args: Record<string, unknown>, evidence: CallEvidence, timeoutMs: number, target?: TargetRef): Promise<ToolResult> {
    const params = { name: tool, arguments: args, _meta: { [RECEIPT_META_KEY]: evidence.receipt } };
    return this.#use(url, headers, timeoutMs, target, async (client) => (await client.callTool(params, CallToolResultSchema, { timeout: timeoutMs })) as ToolResult);
  }

  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map(async (client) => (await client.catch(() => undefined))?.close()));
  }

  async #use<T>(url: string, headers: Record<string, string>, timeoutMs: number, target: TargetRef | undefined, work: (client: Client) => Promise<T>): Promise<T> {
    const key = createHash('sha256').update(JSON.stringify([url, headers])).digest('base64url');
    if (target) {
      const served = this.#targets.get(key) ?? new Map<string, TargetRef>();
      served.set(`${target.tenant}/${target.gateway}/${target.target}`, target);
      this.#targets.set(key, served);
    }
    let client = this.#clients.get(key);
    if (client) {
      this.#clients.delete(key);
      this.#clients.set(key, client);
    } else {
      client = this.#connect(key, url, headers, timeoutMs);
      this.#clients.set(key, client);
      this.#evictBeyond(this.options.maxClients ?? 256);
    }
    try {
      return await work(await client);
    } catch (error) {
      if (this.#clients.get(key) === client) this.#forget(key);
      void client.then((c) => c.close()).catch(() => undefined);
      throw failureOf(error, timeoutMs);
    }
  }

  #forget(key: string): void {
    this.#clients.delete(key);
    this.#targets.delete(key);
  }

  async #connect(key: string, url: string, headers: Record<string, string>, timeoutMs: number): Promise<Client> {
    const limit = this.options.maxResultBytes;
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers },
      fetch: async (input, init) => {
        const traceparent = traceparentOf();
        const request = new Headers(init?.headers);
        if (traceparent) request.set('traceparent', traceparent);
        const response = await requestFetch(input, { ...init, headers: request });
        if (Number(response.headers.get('content-length') ?? 0) > limit) {
          await response.body?.cancel();
          throw new UpstreamFailure('too_large', `the target answered with more than ${limit} bytes`);
        }
        // An answer without a length (chunked, or an SSE stream) is counted as it is read and cut
        // off at the limit, not read whole first: a request's answer, and the resumption of one
        // (a GET with Last-Event-ID); not the standing GET stream of notifications, which lives as
        // long as the connection. (A JSON answer cut off fails its call as too large at once; an
        // SSE one ends the stream, which the SDK reports to no request, so that call fails at its
        // timeout.)
        const answersRequest = (init?.method ?? 'GET') === 'POST' || request.has('last-event-id');
        return answersRequest ? limitedBody(response, limit) : response;
      },
    });
    const client = new Client({ name: 'mandate-gateway', version: this.options.version });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      for (const target of this.#targets.get(key)?.values() ?? []) this.options.onToolsChanged?.(target);
    });
    await client.connect(transport, { timeout: timeoutMs });
    return client;
  }

  #evictBeyond(max: number): void {
    while (this.#clients.size > max) {
      const [oldest, client] = this.#clients.entries().next().value!;
      this.#forget(oldest);
      void client.then((c) => c.close()).catch(() => undefined);
    }
  }
}

/** The response, its body failing with `too_large` once more than `limit` bytes have come. */
function limitedBody(response: Response, limit: number): Response {
  if (!response.body) return response;
  let seen = 0;
  const counted = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > limit) controller.error(new UpstreamFailure('too_large', `the target answered with more than ${limit} bytes`));
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Response(counted, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/** Each request with an abort signal of its own (the SDK passes its transport's to all of them). */
const requestFetch = fetchWithRequestSignals();

/** What went wrong at the target, in words that name no credential (the SDK's messages can quote a response body). */
function failureOf(error: unknown, timeoutMs: number): UpstreamFailure {
  if (error instanceof UpstreamFailure) return error;
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) return new UpstreamFailure('timeout', `the target did not answer within ${timeoutMs} ms`, { cause: error });
  if (error instanceof StreamableHTTPError && (error.code === 401 || error.code === 403)) return new UpstreamFailure('refused', `the target refused the gateway's credential (HTTP ${error.code})`, { cause: error });
  if (error instanceof StreamableHTTPError) return new UpstreamFailure('unreachable', `the target answered HTTP ${error.code ?? 'error'}`, { cause: error });
  if (error instanceof McpError) return new UpstreamFailure('malformed', `the target answered with an MCP error (${error.code})`, { cause: error });
  if (error instanceof TypeError && /fetch failed|ECONNREFUSED|ENOTFOUND|network/i.test(`${error.message} ${String(error.cause)}`)) {
    return new UpstreamFailure('unreachable', 'the target could not be reached', { cause: error, noAnswer: true });
  }
  return new UpstreamFailure('malformed', 'the target did not answer with valid MCP', { cause: error });
}
