import { endpointController } from '@mandate/bus';
import {
  gatewayCreateEndpoint,
  gatewayDeleteEndpoint,
  gatewayGetEndpoint,
  gatewayListEndpoint,
  targetAddEndpoint,
  targetListEndpoint,
  targetRemoveEndpoint,
  targetSyncEndpoint,
  toolsForEndpoint,
} from '@mandate/contracts';
import { GatewayAdministration } from '../domain/gateway-administration.js';

/** Gateways, their targets and what a principal sees, over NATS. */
export const GatewaysEndpoint = endpointController(GatewayAdministration, (serve) => [
  serve(gatewayCreateEndpoint, (gateways, request) => gateways.create(request)),
  serve(gatewayGetEndpoint, (gateways, request) => gateways.get(request.tenant, request.name)),
  serve(gatewayListEndpoint, (gateways, request) => gateways.list(request.tenant, request.limit, request.cursor)),
  serve(gatewayDeleteEndpoint, (gateways, request) => gateways.delete(request.tenant, request.name, request.actor)),
  serve(targetAddEndpoint, (gateways, request) => gateways.addTarget(request.tenant, request.gateway, request.target, request.actor)),
  serve(targetListEndpoint, (gateways, request) => gateways.listTargets(request.tenant, request.gateway)),
  serve(targetRemoveEndpoint, (gateways, request) => gateways.removeTarget(request.tenant, request.gateway, request.target, request.actor)),
  serve(targetSyncEndpoint, (gateways, request) => gateways.syncTarget(request.tenant, request.gateway, request.target, request.actor)),
  serve(toolsForEndpoint, (gateways, request) => gateways.toolsFor(request.tenant, request.gateway, request.token)),
]);
