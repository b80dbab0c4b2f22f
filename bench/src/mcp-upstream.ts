import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/** Tools each of the upstream's endpoints serves: `echo` and 99 more, so that 5 targets make 500 tools. */
export const TOOLS_PER_ENDPOINT = 100;

export interface BenchUpstream {
  /** The MCP endpoint `/mcp/<n>` (n from 1 to `endpoints`): each the same 100 tools, each its own target. */
  url(endpoint: number): string;
  /** `/mcp/list`: a server that lists the tools given to `setListing` (and has no others), as they are. */
  readonly listUrl: string;
  setListing(tools: Tool[]): void;
  /** Open MCP sessions. */
  readonly sessions: number;
  /** The `authorization` header of the latest request. */
  readonly lastAuthorization: string | undefined;
  stop(): Promise<void>;
}

/** The 99 tools besides `echo`: a CRM-ish catalogue with a description and a small input schema each, as real servers list them. */
const CATALOGUE = Array.from({ length: TOOLS_PER_ENDPOINT - 1 }, (_, i) => {
  const n = String(i + 1).padStart(3, '0');
  return {
    name: `records_${n}`,
    description: `Looks up records of kind ${n} for an account: the newest first, at most \`limit\` of them, optionally only those changed since a date.`,
    inputSchema: {
      accountId: z.string().describe('The account, e.g. acc-1'),
      limit: z.number().int().min(1).max(100).optional().describe('At most this many records (default 20)'),
      since: z.string().optional().describe('Only records changed since this ISO 8601 date'),
    },
  };
});

function toolServer(): McpServer {
  const server = new McpServer({ name: 'bench-upstream', version: '1.0.0' });
  server.registerTool('echo', { description: 'Answers with the message it was given', inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: message }] }));
  for (const tool of CATALOGUE) {
    server.registerTool(tool.name, { description: tool.description, inputSchema: tool.inputSchema }, async ({ accountId }) => ({ content: [{ type: 'text', text: JSON.stringify({ accountId, records: [] }) }] }));
  }
  return server;
}

/** A server with many tools that lists them from memory, as one with a large catalogue would (McpServer converts every tool's zod schema again at each tools/list). */
function listingServer(tools: () => Tool[]): Server {
  const server = new Server({ name: 'bench-listing', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools() }));
  return server;
}

/**
 * The upstream MCP server of the gateway rows, written with the official SDK (`McpServer`) as a
 * tool vendor would: Streamable HTTP, stateful (one server and transport per session, as the
 * SDK's stateful example), JSON responses, on a loopback port. `endpoints` paths serve the same
 * tools, so each can be a target of its own; `/mcp/list` lists a given set of tools (the direct
 * counterpart of the gateway's tools/list). Every request must carry a bearer token (which one is
 * not checked): the gateway's is its M2M token from the vault.
 */
export async function startBenchUpstream(endpoints: number): Promise<BenchUpstream> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  let listing: Tool[] = [];
  let lastAuthorization: string | undefined;
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const endpoint = /^\/mcp\/(\d+|list)$/.exec(request.url ?? '')?.[1];
    if (!endpoint || (endpoint !== 'list' && (Number(endpoint) < 1 || Number(endpoint) > endpoints))) return void response.writeHead(404).end();
    lastAuthorization = request.headers.authorization;
    if (!/^Bearer \S+$/.test(lastAuthorization ?? '')) return void response.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
    const sessionId = request.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const transport = sessions.get(sessionId);
      if (!transport) return void response.writeHead(404).end();
      return transport.handleRequest(request, response);
    }
    if (request.method !== 'POST') return void response.writeHead(405, { allow: 'POST' }).end();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      enableJsonResponse: true,
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await (endpoint === 'list' ? listingServer(() => listing) : toolServer()).connect(transport);
    await transport.handleRequest(request, response);
  };
  const http = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve, reject) => http.once('error', reject).listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url: (endpoint) => `${base}/mcp/${endpoint}`,
    listUrl: `${base}/mcp/list`,
    setListing: (tools) => void (listing = tools),
    get sessions() {
      return sessions.size;
    },
    get lastAuthorization() {
      return lastAuthorization;
    },
    stop: async () => {
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all(open.map((transport) => transport.close().catch(() => undefined)));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
