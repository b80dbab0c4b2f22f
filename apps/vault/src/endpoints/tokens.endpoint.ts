import { endpointController } from '@mandate/bus';
import { apiKeyEndpoint, oauth2TokenEndpoint, tokenRevokeEndpoint } from '@mandate/contracts';
import { ApiKeyRelease } from '../domain/api-key-release.js';
import { TokenRelease } from '../domain/token-release.js';
import { TokenRevocation } from '../domain/token-revocation.js';

/** Credentials for workloads over NATS: OAuth2 tokens, API keys, and revoking a user's tokens. */
export const TokenReleaseEndpoint = endpointController(TokenRelease, (serve) => [serve(oauth2TokenEndpoint, (tokens, request) => tokens.release(request))]);

export const ApiKeyReleaseEndpoint = endpointController(ApiKeyRelease, (serve) => [serve(apiKeyEndpoint, (keys, request) => keys.release(request))]);

export const TokenRevocationEndpoint = endpointController(TokenRevocation, (serve) => [
  serve(tokenRevokeEndpoint, (revocation, request) => revocation.revoke(request.tenant, request.provider, request.user, request.actor)),
]);
