import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server as McpLowLevelServer } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { RECEIPT_META_KEY } from '@mandate/contracts';
import { freePort } from './nats-server.js';

/*
 * Upstream MCP servers for the gateway's tests: the seed scenario's tools (a CRM, finance and
 * documents) written with the official SDK, and the reference server nobody here wrote
 * (`@modelcontextprotocol/server-everything`), each over Streamable HTTP on a loopback port.
 * (Only tests import this file: it is not part of the library's build.)
 */

/**
 * How a sample server answers from now on: normally, after a delay, with a body that is not
 * JSON-RPC, with a result larger than `bytes` (its length given, or `streamed`: chunked, without a
 * length, written until the reader stops reading; `'sse'`: the same as one server-sent event), or
 * with an HTTP error.
 */
export type ToolServerBehaviour =
  | { mode: 'normal' }
  | { mode: 'slow'; delayMs: number }
  | { mode: 'malformed' }
  | { mode: 'oversized'; bytes: number; streamed?: boolean | 'sse' }
  | { mode: 'http-error'; status: number };

/** One request as the sample server saw it. */
export interface SeenRequest {
  authorization: string | undefined;
  traceparent: string | undefined;
  method: string | undefined;
}

export interface SampleToolServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  readonly requests: readonly SeenRequest[];
  /** Bytes of the last streamed oversized answer written before the reader hung up (or all of them). */
  readonly streamedBytes: number;
  setBehaviour(behaviour: ToolServerBehaviour): void;
  /** Stops answering: from then on connections are refused (a target that is down). */
  stop(): Promise<void>;
  /** Answers again, at the same URL (a target that is back). */
  restart(): Promise<void>;
}

const ACCOUNTS: Record<string, { name: string; notes: string[]; spend: number; documents: string[] }> = {
  'acc-1': { name: 'Globex', notes: ['Renewal in March', 'Wants the analytics add-on'], spend: 182_400, documents: ['Globex MSA.pdf'] },
  'acc-2': { name: 'Initech', notes: ['Churn risk: support tickets up'], spend: 48_900, documents: ['Initech order form.pdf'] },
};

/** The seed's sales tools as one MCP server: what a sales brief needs from the CRM, finance and documents. */
export async function startSampleToolServer(): Promise<SampleToolServer> {
  const requests: SeenRequest[] = [];
  let behaviour: ToolServerBehaviour = { mode: 'normal' };
  const text = (value: unknown) => ({ content: [{ type: 'text' as const, text: JSON.stringify(value) }], structuredContent: value as Record<string, unknown> });
  const tools = () => {
    const server = new McpServer({ name: 'sample-sales-tools', version: '1.0.0' });
    server.registerTool('crm_notes', { description: "An account's CRM notes", inputSchema: { accountId: z.string().regex(/^acc-\d+$/) } }, async ({ accountId }) => {
      if (behaviour.mode === 'oversized') return text({ blob: 'x'.repeat(behaviour.bytes) });
      return text({ accountId, notes: ACCOUNTS[accountId]?.notes ?? [] });
    });
    server.registerTool('finance_spend', { description: "An account's spend this year", inputSchema: { accountId: z.string() } }, async ({ accountId }) => text({ accountId, currency: 'EUR', total: ACCOUNTS[accountId]?.spend ?? 0 }));
    server.registerTool('documents_list', { description: "An account's documents", inputSchema: { accountId: z.string() } }, async ({ accountId }) => text({ accountId, documents: ACCOUNTS[accountId]?.documents ?? [] }));
    server.registerTool('whoami', { description: 'What the server was called with (for tests)', inputSchema: {} }, async (_args, extra) => text({ authorization: extra.requestInfo?.headers['authorization'] ?? null }));
    return server;
  };
  const listener = async (request: IncomingMessage, response: ServerResponse) => {
    const body = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    const parsed = body ? (JSON.parse(body) as { method?: string }) : undefined;
    requests.push({ authorization: request.headers.authorization, traceparent: header(request, 'traceparent'), method: parsed?.method });
    if (behaviour.mode === 'slow') await new Promise((resolve) => setTimeout(resolve, (behaviour as { delayMs: number }).delayMs));
    if (behaviour.mode === 'malformed' && parsed?.method === 'tools/call') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"this is": "not JSON-RPC"');
    if (behaviour.mode === 'http-error' && parsed?.method === 'tools/call') return void response.writeHead(behaviour.status, { 'content-type': 'text/plain' }).end('upstream trouble');
    if (behaviour.mode === 'oversized' && behaviour.streamed && parsed?.method === 'tools/call') return streamOversized(response, (parsed as { id?: unknown }).id, behaviour.bytes, behaviour.streamed === 'sse');
    // Stateless: a server and transport per request, as the SDK's stateless example does.
    const server = tools();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    response.on('close', () => void server.close());
    await server.connect(transport);
    await transport.handleRequest(request, response, parsed);
  };
  let streamedBytes = 0;
  /** A JSON-RPC result of `bytes` characters of text, written in chunks with no length, until the reader hangs up. */
  const streamOversized = async (response: ServerResponse, id: unknown, bytes: number, sse: boolean) => {
    streamedBytes = 0;
    let gone = false;
    response.on('close', () => (gone = true));
    response.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/json' });
    response.write(`${sse ? 'event: message\ndata: ' : ''}{"jsonrpc":"2.0","id":${JSON.stringify(id ?? null)},"result":{"content":[{"type":"text","text":"`);
    const chunk = 'x'.repeat(64 * 1024);
    while (!gone && streamedBytes < bytes) {
      streamedBytes += chunk.length;
      if (!response.write(chunk)) await new Promise((resolve) => response.once('drain', resolve).once('close', resolve));
    }
    if (!gone) response.end(sse ? '"}]}}\n\n' : '"}]}}');
  };
  let http: Server | undefined;
  const port = await freePort();
  const start = async () => {
    http = createServer((request, response) => void listener(request, response).catch(() => response.destroy()));
    await new Promise<void>((resolve) => http!.listen(port, '127.0.0.1', resolve));
  };
  await start();
  return {
    url: `http://127.0.0.1:${(http!.address() as AddressInfo).port}/mcp`,
    requests,
    get streamedBytes() {
      return streamedBytes;
    },
    setBehaviour: (next) => (behaviour = next),
    stop: async () => {
      http?.closeAllConnections();
      await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
      http = undefined;
    },
    restart: async () => {
      if (!http) await start();
    },
  };
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export interface EverythingServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  stop(): Promise<void>;
}

/** `@modelcontextprotocol/server-everything` (the MCP project's reference server) over Streamable HTTP, as a child process. */
export async function startEverythingServer(): Promise<EverythingServer> {
  const entry = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [entry, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`server-everything did not start: ${output}`)), 20_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('listening on port')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server-everything exited (${code}): ${output}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface ChangingToolServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  /** Adds a tool to every session; each announces it with `notifications/tools/list_changed`. Added while stopped, it is there after `restart()`. */
  addTool(name: string): void;
  stop(): Promise<void>;
  /** Listens again on the same port, with every tool added so far (new sessions only: the old ones ended with `stop()`). */
  restart(): Promise<void>;
}

/** A stateful MCP server (sessions, a standing SSE stream) whose tools change while clients are connected; `tools` are its first ones. */
export async function startChangingToolServer(tools: readonly string[] = ['first']): Promise<ChangingToolServer> {
  const names = [...tools];
  const servers = new Set<McpServer>();
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const register = (server: McpServer, name: string) => server.registerTool(name, { description: `the ${name} tool`, inputSchema: {} }, async () => ({ content: [{ type: 'text' as const, text: name }] }));
  const http = createServer((request, response) => {
    void (async () => {
      const id = header(request, 'mcp-session-id');
      const existing = id ? sessions.get(id) : undefined;
      if (existing) return existing.handleRequest(request, response);
      if (id) return void response.writeHead(404).end();
      const server = new McpServer({ name: 'changing-tools', version: '1.0.0' });
      for (const name of names) register(server, name);
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => crypto.randomUUID(), onsessioninitialized: (sid) => void sessions.set(sid, transport) });
      servers.add(server);
      await server.connect(transport);
      await transport.handleRequest(request, response);
    })().catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    addTool: (name) => {
      names.push(name);
      for (const server of servers) register(server, name);
    },
    stop: async () => {
      await Promise.all([...servers].map((server) => server.close().catch(() => undefined)));
      servers.clear();
      sessions.clear();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
    restart: async () => {
      if (!http.listening) await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
    },
  };
}

export interface ExpenseToolServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  /** Every amount the tool approved, in order. */
  readonly approved: readonly number[];
  /** The policy receipt (`_meta`) each approved call came with. */
  readonly receipts: readonly string[];
  stop(): Promise<void>;
}

/** The seed's finance tool for policy tests, `approve_expense(amount, reason?)` (the official SDK's MCP server), stateless, no credential; it records what it approved and each call's policy receipt. */
export async function startExpenseToolServer(): Promise<ExpenseToolServer> {
  const approved: number[] = [];
  const receipts: string[] = [];
  const http = createServer((request, response) => {
    void (async () => {
      const server = new McpServer({ name: 'sample-finance', version: '1.0.0' });
      server.registerTool('approve_expense', { description: 'Approves an expense', inputSchema: { amount: z.number().positive(), reason: z.string().optional() } }, async ({ amount }, extra) => {
        approved.push(amount);
        receipts.push(String(extra._meta?.[RECEIPT_META_KEY]));
        return { content: [{ type: 'text' as const, text: `approved ${amount}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      response.on('close', () => void server.close());
      await server.connect(transport);
      await transport.handleRequest(request, response);
    })().catch(() => response.destroy());
  });
  return { ...(await listenOnLoopback(http)), approved, receipts };
}

export interface ConformanceToolServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  stop(): Promise<void>;
}

/** The tool names the conformance suite's tool scenarios call, which this server implements. */
export const CONFORMANCE_TOOL_NAMES = ['test_simple_text', 'test_image_content', 'test_audio_content', 'test_embedded_resource', 'test_multiple_content_types', 'test_error_handling', 'test_tool_with_progress', 'json_schema_2020_12_tool'] as const;

// As the suite's reference server answers (examples/servers/typescript/everything-server.ts at
// @modelcontextprotocol/conformance v0.1.16, the version package.json pins).
const TEST_IMAGE_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const TEST_AUDIO_BASE64 = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const NO_ARGUMENTS = { type: 'object' as const, properties: {} };
const CONFORMANCE_TOOLS: Record<(typeof CONFORMANCE_TOOL_NAMES)[number], { description: string; inputSchema?: Record<string, unknown>; result: CallToolResult }> = {
  test_simple_text: { description: 'Tests simple text content response', result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] } },
  test_image_content: { description: 'Tests image content response', result: { content: [{ type: 'image', data: TEST_IMAGE_BASE64, mimeType: 'image/png' }] } },
  test_audio_content: { description: 'Tests audio content response', result: { content: [{ type: 'audio', data: TEST_AUDIO_BASE64, mimeType: 'audio/wav' }] } },
  test_embedded_resource: {
    description: 'Tests embedded resource content response',
    result: { content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] },
  },
  test_multiple_content_types: {
    description: 'Tests response with multiple content types (text, image, resource)',
    result: {
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: TEST_IMAGE_BASE64, mimeType: 'image/png' },
        { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
      ],
    },
  },
  test_error_handling: { description: 'Tests error response handling', result: { isError: true, content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }] } },
  test_tool_with_progress: { description: 'Tests tool that reports progress notifications', result: { content: [{ type: 'text', text: 'Progress tool completed' }] } },
  json_schema_2020_12_tool: {
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
    result: { content: [{ type: 'text', text: 'JSON Schema 2020-12 tool called' }] },
  },
};

/**
 * The tools the MCP conformance suite's tool scenarios call, answering as the suite's reference
 * server does (the reference server itself is not published to npm). The official SDK's low-level
 * server, so the 2020-12 schema is listed exactly as written. Stateless, no credential.
 */
export async function startConformanceToolServer(): Promise<ConformanceToolServer> {
  const http = createServer((request, response) => {
    void (async () => {
      const server = new McpLowLevelServer({ name: 'conformance-tools', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({
        tools: Object.entries(CONFORMANCE_TOOLS).map(([name, tool]) => ({ name, description: tool.description, inputSchema: tool.inputSchema ?? NO_ARGUMENTS })),
      }));
      server.setRequestHandler(CallToolRequestSchema, async (call, extra) => {
        const tool = CONFORMANCE_TOOLS[call.params.name as keyof typeof CONFORMANCE_TOOLS];
        if (!tool) throw new McpError(ErrorCode.InvalidParams, `no tool ${call.params.name}`);
        const progressToken = call.params._meta?.progressToken;
        if (call.params.name === 'test_tool_with_progress' && progressToken !== undefined) {
          for (const progress of [0, 50, 100]) {
            await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total: 100, message: `Completed step ${progress} of 100` } });
            if (progress < 100) await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
        return tool.result;
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      response.on('close', () => void server.close());
      await server.connect(transport);
      await transport.handleRequest(request, response);
    })().catch(() => response.destroy());
  });
  return listenOnLoopback(http);
}

/** Serves `http` on a free loopback port: its MCP endpoint, and a stop that cuts open connections. */
async function listenOnLoopback(http: Server): Promise<{ url: string; stop(): Promise<void> }> {
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    stop: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
