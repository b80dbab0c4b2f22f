import { endpointController } from '@mandate/bus';
import { policyTestEndpoint } from '@mandate/contracts';
import { PolicyTests } from '../domain/policy-tests.js';

/** `mandate policy test` over NATS. */
export const PolicyTestsEndpoint = endpointController(PolicyTests, (serve) => [serve(policyTestEndpoint, (tests, r) => tests.run(r.tenant, r.gateway, r.text, r.tests))]);
