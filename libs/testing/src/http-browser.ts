import { CookieSession } from '@mandate/demo';

/**
 * A browser, as far as HTTP-level tests need one: a cookie jar per origin and redirects left to
 * the test, so each hop of a sign-in or consent flow can be looked at.
 */
export class HttpBrowser {
  readonly #sessions = new Map<string, CookieSession>();

  #session(origin: string): CookieSession {
    const session = this.#sessions.get(origin) ?? new CookieSession();
    this.#sessions.set(origin, session);
    return session;
  }

  request(url: string, form?: Record<string, string>): Promise<Response> {
    return this.#session(new URL(url).origin).visit(url, form);
  }

  cookies(origin: string): string[] {
    return [...(this.#sessions.get(origin)?.cookies.keys() ?? [])];
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
