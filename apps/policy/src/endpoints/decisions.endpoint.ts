import { endpointController } from '@mandate/bus';
import { policyExplainEndpoint, policyReplayEndpoint } from '@mandate/contracts';
import { DecisionExplanation } from '../domain/decision-explanation.js';
import { PolicyReplay } from '../domain/policy-replay.js';

/** A candidate set replayed against the decision log. */
export const PolicyReplayEndpoint = endpointController(PolicyReplay, (serve) => [
  serve(policyReplayEndpoint, (replay, r) => replay.replay(r.tenant, r.gateway, r.since, r.candidate, r.actor)),
]);

/** One recorded decision explained. */
export const DecisionExplanationEndpoint = endpointController(DecisionExplanation, (serve) => [
  serve(policyExplainEndpoint, (explanation, r) => explanation.explain(r.tenant, r.id, r.actor)),
]);
