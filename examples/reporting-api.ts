import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/** A report the API accepted, and who posted it (the token's client). */
export interface PostedReport {
  client: string | undefined;
  idempotencyKey: string | undefined;
  body: string;
}

export interface ReportingApi {
  url: string;
  reports: PostedReport[];
  refused: number;
  stop(): Promise<void>;
}

/**
 * A sample reporting API, protected the way a real one is: a bearer JWT from the OAuth server,
 * checked against its JWKS, for this audience, with the `reports:write` scope. One report per
 * idempotency key, so a retried run has one effect.
 */
export async function startReportingApi(options: { issuer: string; jwksUri: string; audience: string }): Promise<ReportingApi> {
  const keys = createRemoteJWKSet(new URL(options.jwksUri));
  const reports: PostedReport[] = [];
  const api: ReportingApi = { url: '', reports, refused: 0, stop: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const verified = token
          ? await jwtVerify(token, keys, { issuer: options.issuer, audience: options.audience }).catch(() => undefined)
          : undefined;
        const scopes = String(verified?.payload['scope'] ?? '').split(' ');
        if (!verified || !scopes.includes('reports:write')) {
          api.refused += 1;
          res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
          return;
        }
        const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
        if (!reports.some((r) => idempotencyKey && r.idempotencyKey === idempotencyKey)) {
          reports.push({ client: verified.payload['client_id'] as string | undefined, idempotencyKey, body: Buffer.concat(chunks).toString('utf8') });
        }
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: true }));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.stop = () => new Promise((resolve) => server.close(() => resolve()));
  return api;
}
