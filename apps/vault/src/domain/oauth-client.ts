import { importJWK, type CryptoKey, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { fillPresetUrl, MandateError, PROVIDER_PRESETS, type PresetName } from '@mandate/contracts';
import type { ProviderDocument } from '../store/vault-records.js';

/** The provider's client secrets, opened just for the call. */
export interface ClientSecrets {
  clientSecret?: string;
  clientPrivateJwk?: JWK;
}

export interface TokenSet {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
  /** Milliseconds since the epoch. */
  expiresAt?: number;
  scopes?: string[];
}

/** The provider refused a refresh token: the person must consent again. */
export class InvalidGrantError extends Error {
  override readonly name = 'InvalidGrantError';
}

const tracer = trace.getTracer('@mandate/vault');
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Plain http is allowed only to this machine (test servers); everything else must be https. */
function allowsInsecure(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === 'http:' && LOOPBACK_HOSTS.has(parsed.hostname);
}

/**
 * The vault's side of OAuth 2.0 against one provider, with `oauth4webapi` doing the protocol:
 * client credentials, refresh, RFC 7009 revocation. Endpoints come from a vendor preset, from
 * discovery (cached) or from explicit metadata. Upstream errors become `provider_error` with
 * the OAuth error code only; never the response body (it may echo a secret).
 */
export class OAuthProviderClient {
  #server: Promise<oauth.AuthorizationServer> | undefined;

  constructor(
    private readonly provider: ProviderDocument,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get scopeSeparator(): string {
    const preset = this.#preset();
    return preset?.scopeSeparator ?? ' ';
  }

  /** Authorization endpoint and extra parameters, for the consent flow to build its redirect. */
  async authorizationEndpoint(): Promise<{ url: string; extraParams: Readonly<Record<string, string>> }> {
    const server = await this.#authorizationServer();
    if (!server.authorization_endpoint) throw new MandateError('provider_error', 'the provider has no authorization endpoint');
    return { url: server.authorization_endpoint, extraParams: this.#preset()?.extraAuthorizeParams ?? {} };
  }

  /** What the consent service needs to send the browser to the provider: no secret. */
  async authorizationInfo(): Promise<{ url: string; issuer: string; issParameterSupported: boolean; extraParams: Readonly<Record<string, string>> }> {
    const { url, extraParams } = await this.authorizationEndpoint();
    const server = await this.#authorizationServer();
    return { url, extraParams, issuer: server.issuer, issParameterSupported: server.authorization_response_iss_parameter_supported === true };
  }

  /**
   * Redeems an authorization code: the authorization response is validated first (an error
   * response, or a missing or wrong RFC 9207 `iss` where the provider advertises it, is refused),
   * then the code is exchanged with the PKCE verifier at the exact redirect URI.
   */
  async authorizationCode(callback: { code: string; iss?: string | undefined }, redirectUri: string, codeVerifier: string, requested: readonly string[], secrets: ClientSecrets): Promise<TokenSet> {
    const server = await this.#authorizationServer();
    return this.#call('authorization code', async () => {
      const parameters = new URLSearchParams({ code: callback.code, ...(callback.iss !== undefined ? { iss: callback.iss } : {}) });
      let validated: URLSearchParams;
      try {
        validated = oauth.validateAuthResponse(server, this.#client(), parameters, oauth.skipStateCheck);
      } catch {
        throw new MandateError('provider_error', 'the authorization response was not valid for this provider (issuer mismatch or malformed)', { details: { providerError: 'invalid_authorization_response' } });
      }
      const response = await oauth.authorizationCodeGrantRequest(server, this.#client(), await this.#clientAuth(secrets), validated, redirectUri, codeVerifier, this.#http(server.token_endpoint!));
      return this.#tokenSet(await oauth.processAuthorizationCodeResponse(server, this.#client(), response), requested);
    });
  }

  async clientCredentials(scopes: readonly string[], secrets: ClientSecrets): Promise<TokenSet> {
    const server = await this.#authorizationServer();
    const parameters: Record<string, string> = { ...this.provider.tokenParameters, ...(scopes.length > 0 ? { scope: scopes.join(this.scopeSeparator) } : {}) };
    return this.#call('client credentials', async () => {
      const response = await oauth.clientCredentialsGrantRequest(server, this.#client(), await this.#clientAuth(secrets), parameters, this.#http(server.token_endpoint!));
      return this.#tokenSet(await oauth.processClientCredentialsResponse(server, this.#client(), response), scopes);
    });
  }

  async refresh(refreshToken: string, scopes: readonly string[], secrets: ClientSecrets): Promise<TokenSet> {
    const server = await this.#authorizationServer();
    return this.#call('refresh', async () => {
      const response = await oauth.refreshTokenGrantRequest(server, this.#client(), await this.#clientAuth(secrets), refreshToken, this.#http(server.token_endpoint!));
      return this.#tokenSet(await oauth.processRefreshTokenResponse(server, this.#client(), response), scopes);
    });
  }

  /** Revokes a token where the provider can; `false` when it has no revocation endpoint. */
  async revoke(token: string, secrets: ClientSecrets): Promise<boolean> {
    const server = await this.#authorizationServer();
    if (!server.revocation_endpoint) return false;
    await this.#call('revocation', async () => {
      const response = await oauth.revocationRequest(server, this.#client(), await this.#clientAuth(secrets), token, this.#http(server.revocation_endpoint!));
      await oauth.processRevocationResponse(response);
    });
    return true;
  }

  #preset() {
    const vendor = this.provider.vendor;
    return vendor && vendor !== 'custom' ? PROVIDER_PRESETS[vendor as PresetName] : undefined;
  }

  #authorizationServer(): Promise<oauth.AuthorizationServer> {
    this.#server ??= this.#resolve().catch((error: unknown) => {
      this.#server = undefined;
      throw error;
    });
    return this.#server;
  }

  async #resolve(): Promise<oauth.AuthorizationServer> {
    const preset = this.#preset();
    if (preset) {
      const params = this.provider.vendorParams ?? {};
      return {
        issuer: 'issuer' in preset ? fillPresetUrl(preset.issuer, params) : `urn:mandate:preset:${this.provider.vendor}`,
        authorization_endpoint: fillPresetUrl(preset.authorizationEndpoint, params),
        token_endpoint: fillPresetUrl(preset.tokenEndpoint, params),
        ...('revocationEndpoint' in preset ? { revocation_endpoint: fillPresetUrl(preset.revocationEndpoint, params) } : {}),
      };
    }
    if (this.provider.metadata) {
      const m = this.provider.metadata;
      return {
        issuer: m.issuer ?? `urn:mandate:provider:${this.provider.name}`,
        token_endpoint: m.tokenEndpoint,
        ...(m.authorizationEndpoint ? { authorization_endpoint: m.authorizationEndpoint } : {}),
        ...(m.revocationEndpoint ? { revocation_endpoint: m.revocationEndpoint } : {}),
      };
    }
    const discoveryUrl = new URL(this.provider.discoveryUrl!);
    const algorithm = discoveryUrl.pathname.endsWith('/.well-known/oauth-authorization-server') ? 'oauth2' : 'oidc';
    const issuer = new URL(discoveryUrl.href.replace(/\/\.well-known\/(openid-configuration|oauth-authorization-server)$/, ''));
    return this.#call('discovery', async () => {
      const response = await oauth.discoveryRequest(issuer, { algorithm, ...this.#http(discoveryUrl.href) });
      return oauth.processDiscoveryResponse(issuer, response);
    });
  }

  #client(): oauth.Client {
    return { client_id: this.provider.clientId! };
  }

  async #clientAuth(secrets: ClientSecrets): Promise<oauth.ClientAuth> {
    switch (this.provider.clientAuthMethod) {
      case 'client_secret_post':
        return oauth.ClientSecretPost(secrets.clientSecret!);
      case 'private_key_jwt': {
        const jwk = secrets.clientPrivateJwk!;
        const key = (await importJWK(jwk, jwk.alg ?? (jwk.kty === 'RSA' ? 'RS256' : jwk.crv === 'Ed25519' ? 'EdDSA' : 'ES256'))) as CryptoKey;
        return oauth.PrivateKeyJwt({ key, ...(jwk.kid ? { kid: jwk.kid } : {}) });
      }
      default:
        return oauth.ClientSecretBasic(secrets.clientSecret!);
    }
  }

  #http(url: string) {
    return { signal: () => AbortSignal.timeout(this.timeoutMs), ...(allowsInsecure(url) ? { [oauth.allowInsecureRequests]: true } : {}) };
  }

  #tokenSet(response: oauth.TokenEndpointResponse, requested: readonly string[]): TokenSet {
    return {
      accessToken: response.access_token,
      tokenType: response.token_type,
      ...(response.refresh_token ? { refreshToken: response.refresh_token } : {}),
      ...(typeof response.expires_in === 'number' ? { expiresAt: this.now() + response.expires_in * 1000 } : {}),
      scopes: typeof response.scope === 'string' ? response.scope.split(/[ ,]/).filter(Boolean) : [...requested],
    };
  }

  /** One provider call: a client span of the request's trace, and errors mapped to our codes. */
  #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    return tracer.startActiveSpan(`provider ${what}`, { kind: SpanKind.CLIENT, attributes: { 'mandate.provider': this.provider.name } }, async (span) => {
      try {
        return await this.#mapErrors(what, run);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        if (error instanceof MandateError) span.setAttribute('mandate.error.code', error.code);
        throw error;
      } finally {
        span.end();
      }
    });
  }

  async #mapErrors<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const oauthError =
        error instanceof oauth.ResponseBodyError
          ? error.error
          : error instanceof oauth.WWWAuthenticateChallengeError
            ? (error.cause[0]?.parameters.error ?? 'invalid_client')
            : undefined;
      if (oauthError !== undefined) {
        if (oauthError === 'invalid_grant' && what === 'refresh') throw new InvalidGrantError('the provider refused the refresh token');
        // Only a well-formed OAuth error code is repeated: the rest of the body is the provider's.
        const code = /^[a-z_]{1,64}$/.test(oauthError) ? oauthError : 'unrecognised_error';
        throw new MandateError('provider_error', `the provider refused the ${what} request (${code})`, { details: { providerError: code } });
      }
      if (error instanceof MandateError) throw error;
      const answer = answerOf(error);
      if (answer) throw new MandateError('provider_error', `the provider answered the ${what} request ${answer.text}`, { cause: error, ...(answer.status ? { details: { providerStatus: answer.status } } : {}) });
      throw new MandateError('provider_error', `the provider could not be reached for ${what}`, { cause: error });
    }
  }
}

/** Refusals oauth4webapi makes before any request is sent: nothing was answered. */
const NOT_SENT = new Set<string>([oauth.HTTP_REQUEST_FORBIDDEN, oauth.REQUEST_PROTOCOL_FORBIDDEN]);

/**
 * What the provider answered when it answered, but not as OAuth says (a 500, an HTML error page,
 * JSON without a token), so that it is not reported as unreachable. Never the body: it may echo a secret.
 */
function answerOf(error: unknown): { text: string; status?: number } | undefined {
  if (!(error instanceof oauth.OperationProcessingError) || NOT_SENT.has(error.code ?? '')) return undefined;
  const response = error.cause instanceof Response ? error.cause : undefined;
  if (response && !response.ok) return { text: `with HTTP ${response.status}`, status: response.status };
  return { text: 'with a response that is not valid OAuth', ...(response ? { status: response.status } : {}) };
}
