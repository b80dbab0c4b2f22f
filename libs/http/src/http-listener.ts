import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Set before the handler runs, so even an error page carries them; a handler may override one for its response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = { 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'cross-origin-opener-policy': 'same-origin' };

/** A node:http server that puts `headers` on every response; `listen` answers with its origin. */
export class HttpListener {
  #server: Server | undefined;

  constructor(private readonly handler: RequestListener, private readonly headers = SECURITY_HEADERS) {}

  async listen(port: number, host: string): Promise<string> {
    const server = (this.#server = createServer((request, response) => {
      for (const [name, value] of Object.entries(this.headers)) response.setHeader(name, value);
      this.handler(request, response);
    }));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
    return `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
  }

  /** Drops keep-alive connections too: a browser's idle socket must not hold up shutdown. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
