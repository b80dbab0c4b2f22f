import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpListener } from '@mandate/http';
import type { JWK } from 'jose';

export const JWKS_PATH = '/.well-known/jwks.json';

/**
 * Serves the WAT verification keys over HTTP for verifiers that are not on the bus. Read-only,
 * one path; the body is public keys only.
 */
export class JwksHttpServer extends HttpListener {
  constructor(private readonly keys: () => JWK[]) {
    super((request, response) => this.#serve(request, response));
  }

  override async listen(port: number, host: string): Promise<string> {
    return `${await super.listen(port, host)}${JWKS_PATH}`;
  }

  #serve(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '').split('?')[0];
    if (path !== JWKS_PATH) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const body = JSON.stringify({ keys: this.keys() });
    response.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
