import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/** A sample CRM: account notes, for a user's JWT from the OAuth server with `crm:read`, only that user's. */
export async function startCrmApi(options: { issuer: string; jwksUri: string; audience: string }): Promise<{ url: string; readers: string[]; stop(): Promise<void> }> {
  const keys = createRemoteJWKSet(new URL(options.jwksUri));
  const readers: string[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const verified = token ? await jwtVerify(token, keys, { issuer: options.issuer, audience: options.audience }).catch(() => undefined) : undefined;
      if (!verified?.payload.sub || !String(verified.payload['scope'] ?? '').split(' ').includes('crm:read')) {
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
        return;
      }
      readers.push(verified.payload.sub);
      const account = new URL(req.url ?? '/', 'http://crm').searchParams.get('account') ?? '';
      const notes = [`${account}: renewal due in March`, `${account}: asked for SSO pricing`];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ owner: verified.payload.sub, notes }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    readers,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
