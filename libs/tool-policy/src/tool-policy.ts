import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { MandateError } from '@mandate/contracts';
import { CEDAR_NAMESPACE, cedarInputFor, cedarSchemaFor, type ModelTool } from './cedar-schema.js';
import { validationIssues, type ParsedPolicySet } from './policy-set.js';

/** One tool call as policy sees it. */
export interface PolicyRequest {
  user: { iss: string; sub: string };
  /** The inbound token's verified claims. */
  claims: Readonly<Record<string, unknown>>;
  scopes: readonly string[];
  client?: string | undefined;
  gateway: string;
  tool: ModelTool;
  /** Already checked against the tool's input schema. */
  arguments: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  now: number;
}

export interface PolicyDecision {
  decision: 'allow' | 'deny';
  /** The policies that decided: the permits that allowed, or the forbids that denied (none: nothing permitted). */
  determining: string[];
  /** Policies that could not be evaluated for this request (each is skipped by Cedar). */
  errors: string[];
}

export interface Decided {
  /** What is enforced. */
  enforced: PolicyDecision;
  /** What the set would decide with its log-only policies active too (only when it has any). */
  withLogOnly?: PolicyDecision;
}

const REGISTERED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'scope', 'groups']);

/**
 * A policy set loaded for one gateway's tools: the schema generated from the tools and the
 * policies parsed once into the engine (Cedar's pre-parsed, stateful calls), so a decision costs
 * one evaluation. Default deny; a forbid wins over any permit. Loading refuses a set that does not
 * validate against the tools, naming each error (a gateway that cannot load its set fails closed).
 */
export class ToolPolicy {
  private constructor(
    readonly version: string,
    private readonly schemaName: string,
    private readonly enforcedSet: string,
    private readonly fullSet: string | undefined,
  ) {}

  /**
   * Loads a set into the engine under `slot` (one per gateway): the engine keeps what it pre-parses
   * for good, so a reload overwrites the slot's sets instead of adding new ones.
   */
  static load(slot: string, version: string, parsed: ParsedPolicySet, tools: readonly ModelTool[]): ToolPolicy {
    const schema = cedarSchemaFor(tools);
    assertValidates(parsed, tools);
    const schemaName = `${slot}:schema`;
    must(cedar.preparseSchema(schemaName, schema));
    const enforced = Object.fromEntries(Object.entries(parsed.policies).filter(([id]) => !parsed.logOnly.includes(id)));
    const enforcedSet = `${slot}:enforced`;
    must(cedar.preparsePolicySet(enforcedSet, { staticPolicies: enforced }));
    let fullSet: string | undefined;
    if (parsed.logOnly.length > 0) {
      fullSet = `${slot}:all`;
      must(cedar.preparsePolicySet(fullSet, { staticPolicies: { ...parsed.policies } }));
    }
    return new ToolPolicy(version, schemaName, enforcedSet, fullSet);
  }

  decide(request: PolicyRequest): Decided {
    let call: ReturnType<typeof callOf>;
    try {
      call = callOf(request);
    } catch (error) {
      const denied: PolicyDecision = { decision: 'deny', determining: [], errors: [error instanceof Error ? error.message : 'the request cannot be said in Cedar'] };
      return this.fullSet ? { enforced: denied, withLogOnly: denied } : { enforced: denied };
    }
    const enforced = this.#evaluate(this.enforcedSet, call);
    return this.fullSet ? { enforced, withLogOnly: this.#evaluate(this.fullSet, call) } : { enforced };
  }

  #evaluate(set: string, call: Omit<cedar.StatefulAuthorizationCall, 'preparsedPolicySetId'>): PolicyDecision {
    const answer = cedar.statefulIsAuthorized({ ...call, preparsedSchemaName: this.schemaName, preparsedPolicySetId: set });
    // A request the schema refuses is denied (fail closed), with why.
    if (answer.type === 'failure') return { decision: 'deny', determining: [], errors: answer.errors.map((e) => e.message) };
    const errors = answer.response.diagnostics.errors.map((e) => e.policyId);
    // Cedar skips a policy that errors; a skipped forbid would no longer win, so any error denies (fail closed).
    if (errors.length > 0) return { decision: 'deny', determining: [], errors };
    return { decision: answer.response.decision, determining: answer.response.diagnostics.reason, errors };
  }
}

function callOf(request: PolicyRequest): Omit<cedar.StatefulAuthorizationCall, 'preparsedPolicySetId'> {
  const user = { type: `${CEDAR_NAMESPACE}::User`, id: `${request.user.iss}#${request.user.sub}` };
  const resource = { type: `${CEDAR_NAMESPACE}::Gateway`, id: request.gateway };
  const groups = Array.isArray(request.claims['groups']) ? (request.claims['groups'] as unknown[]).filter((g): g is string => typeof g === 'string') : [];
  const tags = Object.fromEntries(Object.entries(request.claims).filter(([name, value]) => typeof value === 'string' && !REGISTERED_CLAIMS.has(name))) as Record<string, string>;
  return {
    principal: user,
    action: { type: `${CEDAR_NAMESPACE}::Action`, id: request.tool.name },
    resource,
    context: {
      input: cedarInputFor(request.tool.inputSchema, request.arguments) as cedar.CedarValueJson,
      scopes: [...request.scopes],
      time: Math.floor(request.now / 1000),
      ...(request.client ? { client: request.client } : {}),
    },
    validateRequest: true,
    entities: [
      { uid: user, attrs: { iss: request.user.iss, sub: request.user.sub, groups }, parents: [], tags },
      { uid: resource, attrs: {}, parents: [] },
    ],
  };
}

/** Refuses, naming each error and its position, a set that does not validate strictly against the tools. */
export function assertValidates(parsed: ParsedPolicySet, tools: readonly ModelTool[]): void {
  const issues = validationIssues(parsed, cedarSchemaFor(tools));
  if (issues.length > 0) throw new MandateError('invalid_request', `the policies do not validate against the gateway's tools: ${issues.map((i) => i.message).join('; ')}`, { issues });
}

function must(answer: cedar.CheckParseAnswer): void {
  if (answer.type === 'failure') throw new MandateError('invalid_request', answer.errors.map((e) => e.message).join('; '));
}
