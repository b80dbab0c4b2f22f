import { endpointController } from '@mandate/bus';
import {
  policyActivateEndpoint,
  policyAttachEndpoint,
  policyCreateEndpoint,
  policyDeleteEndpoint,
  policyDetachEndpoint,
  policyForGatewayEndpoint,
  policyGetEndpoint,
  policyListEndpoint,
  policySetModeEndpoint,
  policyUpdateEndpoint,
  policyValidateEndpoint,
  policyVersionsEndpoint,
} from '@mandate/contracts';
import { PolicyAdministration } from '../domain/policy-administration.js';

/** Policy sets, their versions and attachments over NATS. */
export const PoliciesEndpoint = endpointController(PolicyAdministration, (serve) => [
  serve(policyCreateEndpoint, (policies, r) => policies.create(r.tenant, r.name, r.description, r.text, r.actor)),
  serve(policyUpdateEndpoint, (policies, r) => policies.update(r.tenant, r.name, r.text, r.actor)),
  serve(policyGetEndpoint, (policies, r) => policies.get(r.tenant, r.name)),
  serve(policyListEndpoint, (policies, r) => policies.list(r.tenant, r.limit, r.cursor)),
  serve(policyVersionsEndpoint, (policies, r) => policies.versions(r.tenant, r.name)),
  serve(policyActivateEndpoint, (policies, r) => policies.activate(r.tenant, r.name, r.version, r.actor)),
  serve(policyDeleteEndpoint, (policies, r) => policies.delete(r.tenant, r.name, r.actor)),
  serve(policyAttachEndpoint, (policies, r) => policies.attach(r.tenant, r.gateway, r.policy, r.mode, r.actor)),
  serve(policySetModeEndpoint, (policies, r) => policies.setMode(r.tenant, r.gateway, r.mode, r.actor)),
  serve(policyDetachEndpoint, (policies, r) => policies.detach(r.tenant, r.gateway, r.actor)),
  serve(policyValidateEndpoint, (policies, r) => policies.validate(r.tenant, r.text, r.gateway)),
  serve(policyForGatewayEndpoint, (policies, r) => policies.forGateway(r.tenant, r.gateway)),
]);
