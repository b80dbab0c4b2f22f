import { endpointController } from '@mandate/bus';
import { authorizeEndpoint, jwksEndpoint, signingKeysRotateEndpoint, tokenForJwtEndpoint, tokenForUserEndpoint, tokenForWorkloadEndpoint } from '@mandate/contracts';
import { SigningKeyAdministration } from '../domain/signing-key-administration.js';
import { TokenService } from '../domain/token-service.js';

/** The authorizer over NATS: inbound authorization and WATs, and the signing keys. */
export const TokensEndpoint = endpointController(TokenService, (serve) => [
  serve(authorizeEndpoint, (tokens, request) => tokens.authorize(request.tenant, request.workload, request.token, request.resource)),
  serve(tokenForWorkloadEndpoint, (tokens, request) => tokens.forWorkload(request.tenant, request.workload, request.clientAssertion)),
  serve(tokenForJwtEndpoint, (tokens, request) => tokens.forJwt(request.tenant, request.workload, request.userToken, request.clientAssertion)),
  serve(tokenForUserEndpoint, (tokens, request) => tokens.forUser(request.tenant, request.workload, request.userId, request.clientAssertion)),
]);

export const SigningKeysEndpoint = endpointController(SigningKeyAdministration, (serve) => [
  serve(jwksEndpoint, (keys) => keys.jwks()),
  serve(signingKeysRotateEndpoint, (keys, request) => keys.rotate(request.actor)),
]);
