import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/** A sample logs API: answers only a JWT from the OAuth server for its audience with `logs:read`. */
export async function startLogsApi(options: { issuer: string; jwksUri: string; audience: string }): Promise<{ url: string; refused: () => number; failNext: (count: number) => void; stop(): Promise<void> }> {
  const keys = createRemoteJWKSet(new URL(options.jwksUri));
  let refused = 0;
  let failing = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const verified = token ? await jwtVerify(token, keys, { issuer: options.issuer, audience: options.audience }).catch(() => undefined) : undefined;
      if (!verified || !String(verified.payload['scope'] ?? '').split(' ').includes('logs:read')) {
        refused += 1;
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
        return;
      }
      if (failing > 0) {
        failing -= 1;
        res.writeHead(503).end();
        return;
      }
      const ticket = new URL(req.url ?? '/', 'http://logs').searchParams.get('ticket');
      const lines = [`INFO ticket ${ticket} opened`, 'WARN cache miss ratio 0.4', 'ERROR payments-db connection pool exhausted', 'INFO retrying'];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ lines }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused: () => refused,
    /** The next `count` authorised requests answer 503, as a flaky API would. */
    failNext: (count) => {
      failing = count;
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
