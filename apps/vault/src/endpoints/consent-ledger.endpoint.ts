import { endpointController } from '@mandate/bus';
import {
  codeExchangeEndpoint,
  consentSessionFailEndpoint,
  consentSessionGetEndpoint,
  grantCheckEndpoint,
  grantListEndpoint,
  grantRevokeEndpoint,
  providerAuthorizationEndpoint,
  sessionCompleteEndpoint,
} from '@mandate/contracts';
import { ConsentCeremony } from '../domain/consent-ceremony.js';
import { ConsentSessions } from '../domain/consent-sessions.js';
import { GrantAdministration } from '../domain/grant-administration.js';

/** The consent ledger over NATS: its sessions (read, and carried to their end) and its grants. */
export const ConsentSessionsEndpoint = endpointController(ConsentSessions, (serve) => [
  serve(consentSessionGetEndpoint, (sessions, request) => sessions.view(request.tenant, request.sessionId)),
]);

export const ConsentCeremonyEndpoint = endpointController(ConsentCeremony, (serve) => [
  serve(providerAuthorizationEndpoint, (ceremony, request) => ceremony.authorizationInfo(request.tenant, request.provider)),
  serve(codeExchangeEndpoint, (ceremony, request) => ceremony.exchangeCode(request)),
  serve(sessionCompleteEndpoint, (ceremony, request) => ceremony.complete(request)),
  serve(consentSessionFailEndpoint, (ceremony, request) => ceremony.fail(request)),
]);

export const GrantsEndpoint = endpointController(GrantAdministration, (serve) => [
  serve(grantCheckEndpoint, (grants, request) => grants.check(request)),
  serve(grantListEndpoint, (grants, request) => grants.list(request)),
  serve(grantRevokeEndpoint, (grants, request) => grants.revoke(request)),
]);
