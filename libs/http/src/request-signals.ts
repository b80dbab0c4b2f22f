/**
 * A fetch that gives each request an abort signal of its own, relayed from the one the caller
 * passed. The MCP SDK's Streamable HTTP client passes one long-lived signal (its transport's) to
 * every request, and Node's fetch (undici) adds an abort listener to the signal it is given that
 * goes only when the request is garbage-collected: listeners pile up on the transport's signal, and
 * since adding one to an `EventTarget` walks those already there, every call costs more than the
 * last (nodejs/node#52635; hundreds of µs per call after a few thousand). Here undici's listener
 * goes on a signal that dies with its request, and the relay from the caller's signal is removed
 * once the answer is read: at once for a plain body, at the end of the stream for an event stream
 * (whose reading the caller's abort must still be able to stop).
 */
export function fetchWithRequestSignals(base: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const parent = init?.signal;
    if (!parent || parent.aborted) return base(input, init);
    const own = new AbortController();
    const relay = () => own.abort(parent.reason);
    parent.addEventListener('abort', relay, { once: true });
    const release = () => parent.removeEventListener('abort', relay);
    let response: Response;
    try {
      response = await base(input, { ...init, signal: own.signal });
    } catch (error) {
      release();
      throw error;
    }
    if (!response.body || !response.headers.get('content-type')?.includes('text/event-stream')) {
      release();
      return response;
    }
    const relayed = response.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: release, cancel: release }));
    return new Response(relayed, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
