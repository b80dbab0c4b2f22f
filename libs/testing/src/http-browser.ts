/**
 * A browser, as far as HTTP-level tests need one: a cookie jar per origin and redirects left to
 * the test, so each hop of a sign-in or consent flow can be looked at.
 */
export class HttpBrowser {
  readonly #jars = new Map<string, Map<string, string>>();

  async request(url: string, form?: Record<string, string>): Promise<Response> {
    const origin = new URL(url).origin;
    const jar = this.#jars.get(origin) ?? new Map<string, string>();
    this.#jars.set(origin, jar);
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { cookie: [...jar].map(([n, v]) => `${n}=${v}`).join('; '), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      ...(form ? { body: new URLSearchParams(form) } : {}),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [name = '', value = ''] = (cookie.split(';')[0] ?? '').split('=', 2);
      if (value) jar.set(name, value);
      else jar.delete(name);
    }
    return response;
  }

  cookies(origin: string): string[] {
    return [...(this.#jars.get(origin)?.keys() ?? [])];
  }

  /**
   * Follows redirects from `location` through the test IdP's dev interactions (signing in as
   * `login`, consenting) until one leads to a URL starting with `until`, which is returned unvisited.
   */
  async throughIdp(location: string, issuer: string, login: string, until: string): Promise<string> {
    for (let hops = 0; !location.startsWith(until); hops++) {
      if (hops > 10) throw new Error(`the IdP flow did not end (at ${location})`);
      const url = new URL(location, issuer).href;
      if (!/\/interaction\/[^/]+$/.test(url)) {
        location = (await this.request(url)).headers.get('location')!;
        continue;
      }
      const prompt = /name="prompt" value="(\w+)"/.exec(await (await this.request(url)).text())?.[1] ?? 'unknown';
      location = (await this.request(url, prompt === 'login' ? { prompt, login } : { prompt })).headers.get('location')!;
    }
    return location;
  }
}
