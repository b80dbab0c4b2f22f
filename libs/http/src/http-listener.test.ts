import { afterEach, describe, expect, it } from 'vitest';
import { skipReason } from '@mandate/testing';
import { HttpListener, SECURITY_HEADERS } from './http-listener.js';

describe('HttpListener', () => {
  let listener: HttpListener | undefined;
  afterEach(() => listener?.close());

  it('listens on a free port and puts the security headers on every response', async () => {
    listener = new HttpListener((_request, response) => response.writeHead(404).end());
    const url = await listener.listen(0, '127.0.0.1');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${url}/anything`);
    expect(response.status).toBe(404);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(response.headers.get(name)).toBe(value);
  });

  it('sends the headers it was given instead, and a handler may override one', async () => {
    listener = new HttpListener((_request, response) => response.writeHead(200, { 'cache-control': 'public, max-age=60' }).end('ok'), {
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    });
    const response = await fetch(await listener.listen(0, '127.0.0.1'));
    expect(await response.text()).toBe('ok');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('cache-control')).toBe('public, max-age=60');
    expect(response.headers.get('x-frame-options')).toBeNull();
  });

  it('brackets an IPv6 host in its URL', async ({ skip }) => {
    listener = new HttpListener((_request, response) => response.end());
    const url = await listener.listen(0, '::1').catch(() => undefined);
    if (url === undefined) return skip(skipReason('HttpListener on ::1', 'this host has no IPv6 loopback'));
    expect(url).toMatch(/^http:\/\/\[::1\]:\d+$/);
  });

  it('closes, even with a keep-alive connection open, and closing twice is harmless', async () => {
    const server = new HttpListener((_request, response) => response.end('ok'));
    const url = await server.listen(0, '127.0.0.1');
    await (await fetch(url, { headers: { connection: 'keep-alive' } })).text();
    await server.close();
    await server.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});
