import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { CEDAR_NAMESPACE } from './cedar-schema.js';

/** The policies that can apply to some tools: every policy whose action scope takes in those tools, and nothing else. */
export interface PolicyClass {
  /** Id → the policy's text (never its JSON to pre-parse: a Long literal past 2^53 would not survive JavaScript's numbers). */
  readonly policies: Readonly<Record<string, string>>;
  /** The permits among them: without one, nothing can be permitted (default deny). */
  readonly permits: ReadonlySet<string>;
  /** Some condition here reads `action`, so two tools of the class may be decided differently. */
  readonly readsAction: boolean;
}

export interface ActionPartition {
  readonly classes: readonly PolicyClass[];
  /** Tool name → its class. */
  readonly classOf: ReadonlyMap<string, number>;
}

/**
 * Past this many policies held over all classes, the set is kept whole: a partition would copy
 * each policy that names no action into every class, and the engine keeps what it parses for good.
 */
const MAX_PARTITIONED_POLICIES = 20_000;

const ACTION_TYPE = `${CEDAR_NAMESPACE}::Action`;

/**
 * Splits a policy set by the tools each policy's action scope can match (`action == …`,
 * `action in [...]`, or any action). Cedar checks a policy's scope before its conditions, so a
 * policy whose scope leaves a tool out is never satisfied and never errs for it: deciding a call
 * of a tool with only its class's policies gives the same decision, the same determining policies
 * and the same errors as the whole set, at a cost that no longer grows with policies about other
 * tools. A policy whose scope cannot be read this way goes into every class.
 */
export function partitionByAction(policies: Readonly<Record<string, string>>, tools: readonly string[], json: Readonly<Record<string, cedar.PolicyJson>> = {}): ActionPartition {
  const scopes = Object.entries(policies).map(([id, text]) => {
    const parsed = json[id];
    return { id, text, ...scopeOf(parsed ?? text) };
  });
  const everywhere = scopes.filter((scope) => scope.actions === 'any');
  const byKey = new Map<string, number>();
  const classes: PolicyClass[] = [];
  const classOf = new Map<string, number>();
  for (const tool of tools) {
    const applying = scopes.filter((scope) => scope.actions === 'any' || scope.actions.has(tool));
    const key = applying.map((scope) => scope.id).join('\n');
    let index = byKey.get(key);
    if (index === undefined) {
      index = classes.length;
      byKey.set(key, index);
      classes.push(policyClass(applying));
    }
    classOf.set(tool, index);
  }
  if (classes.length > 1 && classes.length * everywhere.length > MAX_PARTITIONED_POLICIES) {
    const whole = policyClass(scopes);
    return { classes: [whole], classOf: new Map(tools.map((tool) => [tool, 0])) };
  }
  return { classes, classOf };
}

function policyClass(scopes: readonly { id: string; text: string; permit: boolean; readsAction: boolean }[]): PolicyClass {
  return {
    policies: Object.fromEntries(scopes.map((scope) => [scope.id, scope.text])),
    permits: new Set(scopes.filter((scope) => scope.permit).map((scope) => scope.id)),
    readsAction: scopes.some((scope) => scope.readsAction),
  };
}

function scopeOf(policy: cedar.Policy): { actions: 'any' | ReadonlySet<string>; permit: boolean; readsAction: boolean } {
  const parsed = typeof policy === 'string' ? cedar.policyToJson(policy) : { type: 'success' as const, json: policy };
  // Only policies that parsed reach here; one that did not is treated as applying everywhere, as a permit that reads `action`.
  if (parsed.type === 'failure') return { actions: 'any', permit: true, readsAction: true };
  const { action, effect, conditions } = parsed.json;
  return { actions: actionsOf(action), permit: effect === 'permit', readsAction: conditions.some((clause) => readsVariable(clause.body, 'action')) };
}

function actionsOf(constraint: cedar.ActionConstraint): 'any' | ReadonlySet<string> {
  if (constraint.op === 'All') return 'any';
  const entities = 'entities' in constraint ? constraint.entities : 'entity' in constraint ? [constraint.entity] : undefined;
  if (!entities) return 'any';
  const names = new Set<string>();
  for (const entity of entities) {
    const uid = '__entity' in entity ? entity.__entity : entity;
    // The schema has no action groups, so `in` names the actions themselves; anything else is not narrowed.
    if (uid.type !== ACTION_TYPE) return 'any';
    names.add(uid.id);
  }
  return names;
}

function readsVariable(expression: unknown, variable: cedar.Var): boolean {
  if (Array.isArray(expression)) return expression.some((item) => readsVariable(item, variable));
  if (!expression || typeof expression !== 'object') return false;
  return Object.entries(expression).some(([key, value]) => (key === 'Var' ? value === variable : key !== 'Value' && readsVariable(value, variable)));
}
