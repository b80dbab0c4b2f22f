import { endpointController } from '@mandate/bus';
import { providerCreateEndpoint, providerDeleteEndpoint, providerGetEndpoint, providerListEndpoint, providerUpdateEndpoint } from '@mandate/contracts';
import { ProviderAdministration } from '../domain/provider-administration.js';

/** Provider administration over NATS. */
export const ProvidersEndpoint = endpointController(ProviderAdministration, (serve) => [
  serve(providerCreateEndpoint, (providers, request) => providers.create(request)),
  serve(providerGetEndpoint, (providers, request) => providers.get(request.tenant, request.name)),
  serve(providerListEndpoint, (providers, request) => providers.list(request.tenant, request.limit, request.cursor)),
  serve(providerUpdateEndpoint, (providers, request) => providers.update(request)),
  serve(providerDeleteEndpoint, (providers, request) => providers.delete(request.tenant, request.name, request.expectedRevision, request.actor)),
]);
