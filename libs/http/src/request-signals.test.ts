import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpListener } from './http-listener.js';
import { fetchWithRequestSignals } from './request-signals.js';

describe('fetchWithRequestSignals: one abort signal for many requests, as the MCP SDK passes it', () => {
  let listener: HttpListener | undefined;
  afterEach(() => listener?.close());

  it('leaves no listener on the caller signal once each answer is read, however many requests use it', async () => {
    listener = new HttpListener((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    const url = await listener.listen(0, '127.0.0.1');
    const fetchOwn = fetchWithRequestSignals();
    const transport = new AbortController();
    for (let i = 0; i < 200; i += 1) expect(await (await fetchOwn(url, { method: 'POST', body: '{}', signal: transport.signal })).json()).toEqual({ ok: true });
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(0);
  });

  it('the caller signal still aborts a request in flight', async () => {
    listener = new HttpListener(() => undefined);
    const url = await listener.listen(0, '127.0.0.1');
    const transport = new AbortController();
    const pending = fetchWithRequestSignals()(url, { signal: transport.signal });
    setTimeout(() => transport.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(0);
  });

  it('an event stream: the caller signal stops its reading while it lasts, and its relay goes when the stream ends', async () => {
    listener = new HttpListener((request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write('data: one\n\n');
      if (request.url === '/short') setTimeout(() => response.end('data: two\n\n'), 20);
    });
    const url = await listener.listen(0, '127.0.0.1');
    const fetchOwn = fetchWithRequestSignals();
    const transport = new AbortController();
    const short = await fetchOwn(`${url}/short`, { signal: transport.signal });
    expect(short.headers.get('content-type')).toBe('text/event-stream');
    expect(await short.text()).toBe('data: one\n\ndata: two\n\n');
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(0);

    const endless = await fetchOwn(`${url}/endless`, { signal: transport.signal });
    const reader = endless.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: one\n\n');
    expect(getEventListeners(transport.signal, 'abort')).toHaveLength(1);
    transport.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
  });
});
