import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { ExpiringCache } from '@mandate/cache';
import { MandateError } from '@mandate/contracts';
import { CEDAR_NAMESPACE, cedarInputFor, cedarSchemaFor, type ModelTool } from './cedar-schema.js';
import { validationIssues, type ParsedPolicySet } from './policy-set.js';
import { partitionByAction, type ActionPartition, type PolicyClass } from './action-partition.js';
import { approvalNeeded, type ApprovalRequirement } from './approval-annotation.js';

/** Who asks, as policy sees them: everything of a request that does not depend on the call. */
export interface PolicyPrincipal {
  user: { iss: string; sub: string };
  /** The inbound token's verified claims. */
  claims: Readonly<Record<string, unknown>>;
  scopes: readonly string[];
  client?: string | undefined;
  gateway: string;
}

/** One tool call as policy sees it. */
export interface PolicyRequest extends PolicyPrincipal {
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
  /** An allow that holds only once a person approves: every permit that allowed it has `@approval`. */
  approval?: ApprovalRequirement;
}

export interface Decided {
  /** What is enforced. */
  enforced: PolicyDecision;
  /** What the set would decide with its log-only policies active too (only when it has any). */
  withLogOnly?: PolicyDecision;
}

const REGISTERED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'scope', 'groups']);

/** Principals whose listing answers are kept per loaded set (past it, the first kept goes first). */
const LISTING_CACHE_PRINCIPALS = 1_000;

/** What the engine holds for one set (enforced, or with its log-only policies too): one pre-parsed set per class of tools. */
interface LoadedSet {
  readonly partition: ActionPartition;
  /** Pre-parsed set id per class. */
  readonly ids: readonly string[];
  /** Each policy's place in the text: determining policies are named in that order, whatever set the engine evaluated. */
  readonly order: ReadonlyMap<string, number>;
}

/**
 * A policy set loaded for one gateway's tools: the schema generated from the tools and the
 * policies parsed once into the engine (Cedar's pre-parsed, stateful calls), so a decision costs
 * one evaluation. The policies are split by the tools their action scope can match
 * (`partitionByAction`), so a call is evaluated against the policies about its tool (and those
 * about every tool) only: the same answer as the whole set, at a cost that does not grow with
 * policies about other tools. Default deny; a forbid wins over any permit. Loading refuses a set
 * that does not validate against the tools, naming each error (a gateway that cannot load its set
 * fails closed).
 */
export class ToolPolicy {
  /**
   * The latest load of each slot. A reload overwrites the slot's pre-parsed sets and schemas, whose
   * names an earlier object still holds (a call decided again after an await, say): that object
   * would read another tool's policies under its tool's name, so it denies instead (fail closed).
   */
  static readonly #generations = new Map<string, number>();
  /** Per principal: what `mayPermit` answered for each class (or tool, where a class reads `action`). */
  readonly #listing = new ExpiringCache<Map<string, boolean>>(LISTING_CACHE_PRINCIPALS);
  /** Tool name → its pre-parsed schema's name, once decided. */
  readonly #schemas = new Map<string, string>();

  private constructor(
    readonly version: string,
    private readonly slot: string,
    private readonly generation: number,
    /** The tools loaded, by name, with their position (which names the tool's schema in the engine). */
    private readonly tools: ReadonlyMap<string, { index: number; tool: ModelTool }>,
    private readonly enforcedSet: LoadedSet,
    private readonly fullSet: LoadedSet | undefined,
    private readonly approvals: ParsedPolicySet['approvals'],
  ) {}

  /**
   * Loads a set into the engine under `slot` (one per gateway): the engine keeps what it pre-parses
   * for good, so a reload overwrites the slot's sets instead of adding new ones.
   */
  static load(slot: string, version: string, parsed: ParsedPolicySet, tools: readonly ModelTool[]): ToolPolicy {
    assertValidates(parsed, tools);
    // Counted before anything is overwritten: from here on, the slot's earlier object denies, even if this load fails.
    const generation = (ToolPolicy.#generations.get(slot) ?? 0) + 1;
    ToolPolicy.#generations.set(slot, generation);
    const names = tools.map((tool) => tool.name);
    const enforced = Object.fromEntries(Object.entries(parsed.policies).filter(([id]) => !parsed.logOnly.includes(id)));
    const enforcedSet = loadSet(`${slot}:enforced`, enforced, names, parsed.json);
    const fullSet = parsed.logOnly.length > 0 ? loadSet(`${slot}:all`, parsed.policies, names, parsed.json) : undefined;
    return new ToolPolicy(version, slot, generation, new Map(tools.map((tool, index) => [tool.name, { index, tool }])), enforcedSet, fullSet, parsed.approvals);
  }

  /** Whether a later load of this slot has overwritten what this object's names point to. */
  get superseded(): boolean {
    return ToolPolicy.#generations.get(this.slot) !== this.generation;
  }

  decide(request: PolicyRequest): Decided {
    let call: ReturnType<typeof callOf>;
    try {
      if (this.superseded) throw new Error('the policy set was reloaded while this call was being decided; call again');
      call = callOf(request);
    } catch (error) {
      const denied: PolicyDecision = { decision: 'deny', determining: [], errors: [error instanceof Error ? error.message : 'the request cannot be said in Cedar'] };
      return this.fullSet ? { enforced: denied, withLogOnly: denied } : { enforced: denied };
    }
    const enforced = this.#held(this.#evaluate(this.enforcedSet, request.tool.name, call));
    return this.fullSet ? { enforced, withLogOnly: this.#held(this.#evaluate(this.fullSet, request.tool.name, call)) } : { enforced };
  }

  #held(decision: PolicyDecision): PolicyDecision {
    const approval = decision.decision === 'allow' ? approvalNeeded(decision.determining, this.approvals) : undefined;
    return approval ? { ...decision, approval } : decision;
  }

  /**
   * For `tools/list`: whether some call of a tool by this principal could be permitted by the
   * enforced policies, whatever its arguments and whenever it is made. The engine evaluates the
   * principal's request with `context.input` and `context.time` unknown (Cedar's partial
   * evaluation inside the pre-parsed call: a policy left depending on them is reported as not
   * evaluable). Definite deny, so the tool is not listed: a forbid holds without them, or no permit
   * is satisfied and none is left depending on them. Conservative the other way: a tool that might
   * be permitted is listed. Answers are kept per principal for this loaded set (bounded).
   */
  mayPermit(principal: PolicyPrincipal): (tool: string) => boolean {
    const key = principalKey(principal);
    let answers = this.#listing.get(key, 0);
    if (!answers) {
      answers = new Map();
      this.#listing.set(key, answers, Infinity);
    }
    const known = answers;
    let base: ReturnType<typeof principalPart> | undefined;
    return (tool) => {
      const index = this.enforcedSet.partition.classOf.get(tool);
      if (index === undefined || this.superseded) return false;
      const policyClass = this.enforcedSet.partition.classes[index]!;
      if (policyClass.permits.size === 0) return false;
      const answerKey = policyClass.readsAction ? `tool:${tool}` : `class:${index}`;
      const cached = known.get(answerKey);
      if (cached !== undefined) return cached;
      base ??= principalPart(principal);
      const answer = cedar.statefulIsAuthorized({
        ...base,
        action: { type: `${CEDAR_NAMESPACE}::Action`, id: tool },
        context: { ...base.context, input: UNKNOWN_INPUT, time: UNKNOWN_TIME },
        // The request holds unknowns, which request validation refuses, so no schema either: the known part is what a call sends, already validated there.
        validateRequest: false,
        preparsedPolicySetId: this.enforcedSet.ids[index]!,
      });
      const may = answer.type === 'success' && mayBePermitted(answer.response, policyClass);
      known.set(answerKey, may);
      return may;
    };
  }

  /**
   * The schema of one tool (its action alone, with the entity types), pre-parsed when the tool is
   * first decided: the engine builds an entity for every action of the schema it is given on each
   * call, so the whole gateway's schema would make every decision pay for every tool. Named by the
   * tool's position in the slot, so reloads overwrite rather than add.
   */
  #schemaOf(tool: string): { name: string; failed?: undefined } | { name?: undefined; failed: string } {
    const known = this.#schemas.get(tool);
    if (known) return { name: known };
    const loaded = this.tools.get(tool);
    if (!loaded) return { failed: `the tool ${tool} is not one the policy set was loaded with` };
    const name = `${this.slot}:schema:${loaded.index}`;
    const parsed = cedar.preparseSchema(name, cedarSchemaFor([loaded.tool]));
    if (parsed.type === 'failure') return { failed: parsed.errors.map((e) => e.message).join('; ') };
    this.#schemas.set(tool, name);
    return { name };
  }

  #evaluate(set: LoadedSet, tool: string, call: Omit<cedar.StatefulAuthorizationCall, 'preparsedPolicySetId'>): PolicyDecision {
    const index = set.partition.classOf.get(tool);
    // A tool the set was not loaded with is not in the schema either: the engine would refuse the request.
    if (index === undefined) return { decision: 'deny', determining: [], errors: [`the tool ${tool} is not one the policy set was loaded with`] };
    const schema = this.#schemaOf(tool);
    if (schema.failed) return { decision: 'deny', determining: [], errors: [schema.failed] };
    const answer = cedar.statefulIsAuthorized({ ...call, preparsedSchemaName: schema.name, preparsedPolicySetId: set.ids[index]! });
    // A request the schema refuses is denied (fail closed), with why.
    if (answer.type === 'failure') return { decision: 'deny', determining: [], errors: answer.errors.map((e) => e.message) };
    const errors = answer.response.diagnostics.errors.map((e) => e.policyId);
    // Cedar skips a policy that errors; a skipped forbid would no longer win, so any error denies (fail closed).
    if (errors.length > 0) return { decision: 'deny', determining: [], errors };
    const determining = answer.response.diagnostics.reason.sort((a, b) => (set.order.get(a) ?? 0) - (set.order.get(b) ?? 0));
    return { decision: answer.response.decision, determining, errors };
  }
}

const UNKNOWN_INPUT = { __extn: { fn: 'unknown', arg: 'input' } } as const;
const UNKNOWN_TIME = { __extn: { fn: 'unknown', arg: 'time' } } as const;

/**
 * With the arguments and the time unknown: a satisfied policy holds whatever they are, an errored
 * one depends on them (or fails for this principal; counted as possibly permitting, conservatively).
 * A satisfied forbid denies every call; otherwise a satisfied or undecided permit might permit one.
 */
function mayBePermitted(response: cedar.Response, policyClass: PolicyClass): boolean {
  if (response.decision === 'allow') return true;
  if (response.diagnostics.reason.length > 0) return false;
  return response.diagnostics.errors.some((error) => policyClass.permits.has(error.policyId));
}

function loadSet(prefix: string, policies: Readonly<Record<string, string>>, tools: readonly string[], json: ParsedPolicySet['json']): LoadedSet {
  const partition = partitionByAction(policies, tools, json);
  const ids = partition.classes.map((policyClass, index) => {
    const id = `${prefix}:${index}`;
    must(cedar.preparsePolicySet(id, { staticPolicies: { ...policyClass.policies } }));
    return id;
  });
  return { partition, ids, order: new Map(Object.keys(policies).map((id, index) => [id, index])) };
}

/** What of a request depends on the principal only: the user entity with its groups and tags, the gateway, the scopes, and the agent (client). */
interface PrincipalPart {
  principal: cedar.TypeAndId;
  resource: cedar.TypeAndId;
  context: { scopes: string[]; client?: string; agent?: { __entity: cedar.TypeAndId } };
  entities: cedar.EntityJson[];
}

function principalPart(principal: PolicyPrincipal): PrincipalPart {
  const user = { type: `${CEDAR_NAMESPACE}::User`, id: `${principal.user.iss}#${principal.user.sub}` };
  const resource = { type: `${CEDAR_NAMESPACE}::Gateway`, id: principal.gateway };
  const groupsClaim = principal.claims['groups'];
  const groups = Array.isArray(groupsClaim) ? groupsClaim.filter((g): g is string => typeof g === 'string') : [];
  const tags: Record<string, string> = {};
  for (const name in principal.claims) {
    const value = principal.claims[name];
    if (typeof value === 'string' && !REGISTERED_CLAIMS.has(name)) tags[name] = value;
  }
  const agent = principal.client ? { type: `${CEDAR_NAMESPACE}::Workload`, id: principal.client } : undefined;
  return {
    principal: user,
    resource,
    context: { scopes: [...principal.scopes], ...(principal.client && agent ? { client: principal.client, agent: { __entity: agent } } : {}) },
    entities: [
      { uid: user, attrs: { iss: principal.user.iss, sub: principal.user.sub, groups }, parents: [], tags },
      { uid: resource, attrs: {}, parents: [] },
      ...(agent ? [{ uid: agent, attrs: {}, parents: [] }] : []),
    ],
  };
}

/** Everything the listing answer can depend on, so two principals share answers only when policy cannot tell them apart. */
function principalKey(principal: PolicyPrincipal): string {
  const { context, entities } = principalPart(principal);
  return ExpiringCache.keyOf(principal.user.iss, principal.user.sub, principal.gateway, JSON.stringify(entities[0]), JSON.stringify(context));
}

function callOf(request: PolicyRequest): Omit<cedar.StatefulAuthorizationCall, 'preparsedPolicySetId'> {
  const base = principalPart(request);
  return {
    ...base,
    action: { type: `${CEDAR_NAMESPACE}::Action`, id: request.tool.name },
    context: {
      input: cedarInputFor(request.tool.inputSchema, request.arguments) as cedar.CedarValueJson,
      scopes: base.context.scopes,
      time: Math.floor(request.now / 1000),
      ...(base.context.agent ? { client: base.context.client!, agent: base.context.agent } : {}),
    },
    validateRequest: true,
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
