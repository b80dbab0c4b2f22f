import { createHash } from 'node:crypto';
import { MandateError, type PolicyTestCase, type policyTestEndpoint, type ResponseOf, type TenantId } from '@mandate/contracts';
import { parsePolicySet, ToolPolicy, type ModelTool, type PolicyDecision } from '@mandate/tool-policy';
import type { PolicyRecords } from '../store/repositories.js';

type TestAnswer = ResponseOf<typeof policyTestEndpoint>;
type CaseResult = TestAnswer['results'][number];

/** Checks a call's arguments against a tool's input schema, as the gateway does before policy sees them. */
export type ArgumentsCheck = (inputSchema: Record<string, unknown>) => (input: unknown) => { valid: boolean; errorMessage?: string | undefined };

export interface PolicyTestsPorts {
  records: PolicyRecords;
  /** The tools of a gateway as its policy sees them; `not_found` for an unknown gateway. */
  gatewayTools(tenant: TenantId, gateway: string): Promise<ModelTool[]>;
  argumentsCheck: ArgumentsCheck;
  now?: () => number;
}

/** The one engine slot tests load into: loading and every case run without a pause, so two runs never share it. */
const ENGINE_SLOT = 'policy-test';

/**
 * `mandate policy test`: runs cases (requests with the decisions expected, after the Cedar CLI's
 * test files) against a candidate text or the set attached to the gateway, with the schema
 * generated from the gateway's tools as they are now. A case passes when the decision is the one
 * expected, every policy named in `reason` is among those that decided, and (when given)
 * `num_errors` policies failed to evaluate. A case whose tool the gateway does not have, or whose
 * arguments do not match the tool's input schema, is `invalid`: the gateway would refuse that call
 * before policy. Changes nothing.
 */
export class PolicyTests {
  readonly #now: () => number;

  constructor(private readonly ports: PolicyTestsPorts) {
    this.#now = ports.now ?? Date.now;
  }

  async run(tenant: TenantId, gateway: string, candidate: string | undefined, cases: readonly PolicyTestCase[]): Promise<TestAnswer> {
    const tools = await this.ports.gatewayTools(tenant, gateway);
    const { text, policySet } = candidate === undefined ? await this.#attached(tenant, gateway) : { text: candidate, policySet: { source: 'candidate' as const, hash: hashOf(candidate) } };
    const policy = ToolPolicy.load(ENGINE_SLOT, policySet.hash, parsePolicySet(text), tools);
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    const now = this.#now();
    const results = cases.map((testCase, index) => this.#runCase(policy, gateway, byName, testCase, index, now));
    const passed = results.filter((result) => result.outcome === 'pass').length;
    return { policySet, passed, failed: results.length - passed, results };
  }

  #runCase(policy: ToolPolicy, gateway: string, tools: ReadonlyMap<string, ModelTool>, testCase: PolicyTestCase, index: number, now: number): CaseResult {
    const { request } = testCase;
    const base = { name: testCase.name ?? `case ${index + 1}`, expected: testCase.decision, determining: [], errors: [] };
    const tool = tools.get(request.action);
    if (!tool) return { ...base, outcome: 'invalid', message: `gateway ${gateway} has no tool ${request.action}` };
    const checked = this.ports.argumentsCheck(tool.inputSchema)(request.context.input);
    if (!checked.valid) return { ...base, outcome: 'invalid', message: `the arguments do not match the input schema of ${tool.name}: ${checked.errorMessage ?? 'invalid'}` };
    const { enforced } = policy.decide({
      user: { iss: request.principal.iss, sub: request.principal.sub },
      claims: { ...request.principal.tags, groups: request.principal.groups },
      scopes: request.context.scopes,
      client: request.context.client,
      gateway,
      tool,
      arguments: request.context.input,
      now: request.context.time === undefined ? now : request.context.time * 1000,
    });
    const mismatch = mismatchOf(testCase, enforced);
    return { ...base, decision: enforced.decision, determining: enforced.determining, errors: enforced.errors, outcome: mismatch ? 'fail' : 'pass', ...(mismatch ? { message: mismatch } : {}) };
  }

  async #attached(tenant: TenantId, gateway: string): Promise<{ text: string; policySet: TestAnswer['policySet'] }> {
    const attachment = await this.ports.records.attachment(tenant, gateway);
    if (!attachment) throw new MandateError('not_found', `gateway ${gateway} has no policy set attached; give a candidate text to test`);
    const stored = await this.ports.records.policy(tenant, attachment.value.policy);
    const version = stored?.value.versions.find((v) => v.version === stored.value.active);
    const text = version && (await this.ports.records.text(tenant, attachment.value.policy, version.version));
    if (!version || text === undefined) throw new MandateError('internal', `the policy set attached to ${gateway} has no active text`);
    return { text, policySet: { source: 'attached', name: attachment.value.policy, version: version.version, hash: version.hash } };
  }
}

/** As the Cedar CLI compares: the decision, the expected reasons among the determining policies, and the number of errors when given. */
function mismatchOf(testCase: PolicyTestCase, decided: PolicyDecision): string | undefined {
  if (decided.decision !== testCase.decision) return `expected ${testCase.decision}, got ${decided.decision}`;
  const problems: string[] = [];
  const missing = testCase.reason.filter((id) => !decided.determining.includes(id));
  if (missing.length > 0) problems.push(`missing reason(s): ${missing.join(', ')}`);
  if (testCase.num_errors !== undefined && decided.errors.length !== testCase.num_errors) problems.push(`expected ${testCase.num_errors} error(s), got ${decided.errors.length}${decided.errors.length > 0 ? `: ${decided.errors.join(', ')}` : ''}`);
  return problems.length > 0 ? problems.join('; ') : undefined;
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}
