import { MandateError, isMandateError } from '@mandate/contracts';
import type { MandateClient } from './client.js';
import { ConsentWatch, DEFAULT_CONSENT_TIMEOUT_MS, type ConsentRecheckBackoff } from './consent-wait.js';

/** A WAT, or a function that returns a current one (called on every use, so it may refresh). */
export type WorkloadTokenSource = string | (() => Promise<string>);

/** Options of {@link withAccessToken}. */
export interface WithAccessTokenOptions {
  /** The vault's credential provider. */
  provider: string;
  /** Scopes to ask for; none means the provider's default scopes. */
  scopes?: string[];
  /** `M2M`: the workload's own client-credentials token; `USER_FEDERATION`: the user's token, with consent. */
  flow: 'M2M' | 'USER_FEDERATION';
  /**
   * The WAT: for `USER_FEDERATION` one bound to the user (`tokenForJwt`, `tokenForUser`), for
   * `M2M` the workload's own (`workloadToken`). A function is called on every use.
   */
  workloadToken: WorkloadTokenSource;
  /**
   * `USER_FEDERATION` only (required there): called once when the person must consent, with the
   * URL to show them and the consent session id. Show the URL to the person (a link in the chat
   * is fine: it is no credential); the wrapped function runs once they have approved.
   */
  onAuthUrl?: (authorizationUrl: string, sessionId: string) => void | Promise<void>;
  /** Ignore a stored token and ask the person again. */
  forceAuthentication?: boolean;
  /** Where the consent flow sends the person back; must be on the workload's allow-list. */
  returnUrl?: string;
  /** Opaque state handed back on the return URL. */
  customState?: string;
  /** Extra authorization request parameters for the provider. */
  customParameters?: Record<string, string>;
  /** How long to wait for consent (default 5 minutes); then `consent_required` with the session id. */
  consentTimeoutMs?: number;
  /** Re-check delays while waiting (default 2 s doubling to 30 s). */
  recheckBackoff?: ConsentRecheckBackoff;
  /** Stops waiting for consent; the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link withApiKey}. */
export interface WithApiKeyOptions {
  /** The vault's API key provider. */
  provider: string;
  /** The workload's WAT, or a function that returns a current one. */
  workloadToken: WorkloadTokenSource;
}

/**
 * Wraps `fn` so that each call first gets an OAuth2 access token from the vault and passes it as
 * the first argument: `withAccessToken(client, options, fn)(...args)` runs `fn(token, ...args)`.
 *
 * For `USER_FEDERATION`, when the vault answers `consent_required` the wrapper calls
 * `onAuthUrl(authorizationUrl, sessionId)` once, then waits: it resumes when the consent service
 * publishes `consent.granted` for that session, and re-asks the vault on a slow backoff
 * (2 s, 4 s, … 30 s) in case an event was missed. A refusal (`access_denied` with
 * `details.status: 'failed'`) ends the wait; so does the timeout, with `consent_required` and
 * `details.sessionId`. Every other failure keeps its `MandateError` code.
 *
 * **The token goes to `fn` and nowhere else.** Use it inside `fn` to call the tool; never return
 * it, never put it into a prompt, a tool result, an error message or a log that a language model
 * sees. A model that can read a token can be talked into leaking it.
 *
 * @example
 * ```ts
 * const listDeals = withAccessToken(mandate, {
 *   provider: 'crm', scopes: ['crm:read'], flow: 'USER_FEDERATION', workloadToken: userWat,
 *   onAuthUrl: (url) => chat.say(`Please allow access to your CRM: ${url}`),
 * }, async (token, region: string) => (await fetch(`https://crm.example/deals?region=${region}`, { headers: { authorization: `Bearer ${token}` } })).json());
 * const deals = await listDeals('emea');
 * ```
 */
export function withAccessToken<A extends unknown[], R>(
  client: MandateClient,
  options: WithAccessTokenOptions,
  fn: (token: string, ...args: A) => R | Promise<R>,
): (...args: A) => Promise<R> {
  if (options.flow === 'USER_FEDERATION' && typeof options.onAuthUrl !== 'function') {
    throw new TypeError('withAccessToken: USER_FEDERATION needs onAuthUrl, to show the person the consent URL');
  }
  return async (...args: A) => {
    const token = await accessToken(client, options);
    return await fn(token, ...args);
  };
}

/**
 * Wraps `fn` so that each call first gets the provider's API key from the vault:
 * `withApiKey(client, options, fn)(...args)` runs `fn(apiKey, ...args)`. As with
 * {@link withAccessToken}, the key goes to `fn` only: never into a prompt, a tool result or a log
 * a language model sees.
 *
 * @example
 * ```ts
 * const forecast = withApiKey(mandate, { provider: 'weather', workloadToken: () => mandate.workloadToken({ privateJwk }) },
 *   async (key, city: string) => (await fetch(`https://weather.example/v1?city=${city}`, { headers: { 'x-api-key': key } })).json());
 * ```
 */
export function withApiKey<A extends unknown[], R>(
  client: MandateClient,
  options: WithApiKeyOptions,
  fn: (apiKey: string, ...args: A) => R | Promise<R>,
): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const key = await client.apiKey({ workloadToken: await resolveWat(options.workloadToken), provider: options.provider });
    return await fn(key, ...args);
  };
}

function resolveWat(source: WorkloadTokenSource): Promise<string> {
  return typeof source === 'function' ? source() : Promise.resolve(source);
}

/** Gets the token, going through consent for USER_FEDERATION when the vault asks for it. */
async function accessToken(client: MandateClient, options: WithAccessTokenOptions): Promise<string> {
  const ask = async (extra: { sessionId?: string; forceAuthentication?: boolean }) =>
    (
      await client.oauth2Token({
        workloadToken: await resolveWat(options.workloadToken),
        provider: options.provider,
        flow: options.flow,
        scopes: options.scopes,
        returnUrl: options.returnUrl,
        customState: options.customState,
        customParameters: options.customParameters,
        ...extra,
      })
    ).accessToken;
  try {
    return await ask({ forceAuthentication: options.forceAuthentication ?? false });
  } catch (error) {
    const session = options.flow === 'USER_FEDERATION' ? consentSessionOf(error) : undefined;
    if (!session) throw error;
    return await awaitConsent(client, options, session, ask);
  }
}

interface ConsentSession {
  sessionId: string;
  authorizationUrl: string;
}

function consentSessionOf(error: unknown): ConsentSession | undefined {
  if (!isMandateError(error) || error.code !== 'consent_required') return undefined;
  const { sessionId, authorizationUrl } = error.details ?? {};
  return typeof sessionId === 'string' && typeof authorizationUrl === 'string' ? { sessionId, authorizationUrl } : undefined;
}

async function awaitConsent(
  client: MandateClient,
  options: WithAccessTokenOptions,
  session: ConsentSession,
  ask: (extra: { sessionId?: string }) => Promise<string>,
): Promise<string> {
  const watch = ConsentWatch.open(client, session.sessionId);
  try {
    await watch.ready();
    await options.onAuthUrl!(session.authorizationUrl, session.sessionId);
    return await watch.until<string>({
      timeoutMs: options.consentTimeoutMs ?? DEFAULT_CONSENT_TIMEOUT_MS,
      backoff: options.recheckBackoff,
      signal: options.signal,
      timeoutDetails: { authorizationUrl: session.authorizationUrl },
      // The event wakes us; the vault decides. A fresh ask (no session id) finds the new grant.
      onEvent: () => stillWaiting(ask({}), undefined),
      // Missed an event? The session's state says pending, failed (access_denied ends it) or done.
      onRecheck: () => stillWaiting(ask({ sessionId: session.sessionId }), session.sessionId),
    });
  } finally {
    watch.close();
  }
}

/**
 * `undefined` (keep waiting) while the vault still wants consent or is briefly unreachable;
 * the token once it is there. When a re-check finds the session gone (the vault opened a new
 * one), waiting longer is pointless: `consent_required` with the new session.
 */
async function stillWaiting(attempt: Promise<string>, sessionId: string | undefined): Promise<string | undefined> {
  try {
    return await attempt;
  } catch (error) {
    if (!isMandateError(error)) throw error;
    if (error.code === 'unavailable' || error.code === 'rate_limited') return undefined;
    if (error.code !== 'consent_required') throw error;
    const current = error.details?.['sessionId'];
    if (sessionId !== undefined && typeof current === 'string' && current !== sessionId) {
      throw new MandateError('consent_required', 'the consent session ended without consent; ask the person again', { details: error.details ?? {} });
    }
    return undefined;
  }
}
