import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { UserRef } from '@mandate/contracts';

export interface McpSession {
  readonly server: Server;
  readonly transport: StreamableHTTPServerTransport;
  /** `<tenant>/<gateway>`: a session id is good at the gateway that made it only. */
  readonly gateway: string;
  /** The user who opened it: a session id is no bearer credential, every request still needs that user's token. */
  readonly user: UserRef;
  lastUsed: number;
}

/**
 * The MCP sessions of this replica (the SDK keeps a session's state in its transport), bounded:
 * when full the least recently used closes, and one idle longer than `idleMs` closes on the next sweep.
 */
export class McpSessions {
  readonly #sessions = new Map<string, McpSession>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(private readonly options: { maxSessions: number; idleMs: number; now?: () => number }) {
    this.#sweeper = setInterval(() => this.sweep(), Math.min(60_000, options.idleMs)).unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The session if it exists and belongs to this gateway and user. */
  find(id: string, gateway: string, user: UserRef): McpSession | undefined {
    const session = this.#sessions.get(id);
    if (!session || session.gateway !== gateway || session.user.iss !== user.iss || session.user.sub !== user.sub) return undefined;
    session.lastUsed = this.#now();
    this.#sessions.delete(id);
    this.#sessions.set(id, session);
    return session;
  }

  add(id: string, session: Omit<McpSession, 'lastUsed'>): void {
    this.#sessions.set(id, { ...session, lastUsed: this.#now() });
    while (this.#sessions.size > this.options.maxSessions) this.#close(this.#sessions.keys().next().value!);
  }

  /** The transport closed it (a DELETE, or the client went away). */
  forget(id: string): void {
    this.#sessions.delete(id);
  }

  sweep(): void {
    const idleSince = this.#now() - this.options.idleMs;
    for (const [id, session] of this.#sessions) if (session.lastUsed < idleSince) this.#close(id);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweeper);
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(sessions.map((session) => session.server.close().catch(() => undefined)));
  }

  #close(id: string): void {
    const session = this.#sessions.get(id);
    this.#sessions.delete(id);
    void session?.server.close().catch(() => undefined);
  }

  #now(): number {
    return (this.options.now ?? Date.now)();
  }
}
