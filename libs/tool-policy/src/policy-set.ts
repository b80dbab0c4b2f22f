import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { MandateError, type FieldIssue } from '@mandate/contracts';
import { approvalRequirementOf, type ApprovalRequirement } from './approval-annotation.js';

/** What a policy set may hold at most. */
export const POLICY_LIMITS = { policyBytes: 10 * 1024, setBytes: 200 * 1024, policies: 1_000 } as const;

/** A policy set as Cedar text, split into its policies by id, each enforced or only logged. */
export interface ParsedPolicySet {
  /** Policy id → its Cedar text. The id is the policy's `@id("…")`, else `policy<n>` by position. */
  readonly policies: Readonly<Record<string, string>>;
  /** Policies annotated `@mode("log-only")`: evaluated and recorded, never enforced. */
  readonly logOnly: readonly string[];
  /** Permits annotated `@approval("…")`: what they permit is held until an approver decides. */
  readonly approvals: Readonly<Record<string, ApprovalRequirement>>;
  /** Where each policy starts in the text, for messages with a line and column. */
  readonly offsets: Readonly<Record<string, number>>;
  /** Each policy as the engine's JSON, converted once here: loading reads each policy's action scope and effect from it. */
  readonly json: Readonly<Record<string, cedar.PolicyJson>>;
  readonly text: string;
}

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Splits and checks a policy set: Cedar syntax (the engine's parser), the size limits, unique ids,
 * known modes, well-formed `@approval` on permits only. Every refusal is `invalid_request` with the position in the text.
 */
export function parsePolicySet(text: string): ParsedPolicySet {
  if (Buffer.byteLength(text) > POLICY_LIMITS.setBytes) refuse(`the policy set is larger than ${POLICY_LIMITS.setBytes / 1024} KB`);
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') refuse(`the policies do not parse: ${describe(parts.errors, text, 0)}`);
  if (parts.policy_templates.length > 0) refuse('templates are not supported; write each policy out');
  if (parts.policies.length > POLICY_LIMITS.policies) refuse(`a policy set holds at most ${POLICY_LIMITS.policies} policies (this one has ${parts.policies.length})`);
  const policies: Record<string, string> = {};
  const offsets: Record<string, number> = {};
  const logOnly: string[] = [];
  const approvals: Record<string, ApprovalRequirement> = {};
  const jsonById: Record<string, cedar.PolicyJson> = {};
  let searchFrom = 0;
  for (const [index, policy] of parts.policies.entries()) {
    const offset = Math.max(0, text.indexOf(policy, searchFrom));
    searchFrom = offset + policy.length;
    const where = position(text, offset);
    if (Buffer.byteLength(policy) > POLICY_LIMITS.policyBytes) refuse(`the policy at ${where} is larger than ${POLICY_LIMITS.policyBytes / 1024} KB`);
    const json = cedar.policyToJson(policy);
    const annotations = json.type === 'success' ? (json.json.annotations ?? {}) : {};
    const id = annotations['id'] ?? `policy${index}`;
    if (!ID.test(id)) refuse(`the @id at ${where} must be 1-128 characters of A-Z a-z 0-9 _ . -`);
    if (id in policies) refuse(`two policies are named ${id} (the second at ${where})`);
    const mode = annotations['mode'] ?? 'active';
    if (mode !== 'active' && mode !== 'log-only') refuse(`the policy ${id} at ${where} has @mode("${mode}"); use "active" or "log-only"`);
    if (mode === 'log-only') logOnly.push(id);
    const approval = json.type === 'success' ? approvalRequirementOf(json.json.effect, annotations) : undefined;
    if (typeof approval === 'string') refuse(`the policy ${id} at ${where}: ${approval}`);
    if (approval) approvals[id] = approval;
    policies[id] = policy;
    offsets[id] = offset;
    if (json.type === 'success') jsonById[id] = json.json;
  }
  return { policies, logOnly, approvals, offsets, json: jsonById, text };
}

/** Strict validation against a schema: every error, with the policy's id and its position in the set. */
export function validationIssues(parsed: ParsedPolicySet, schema: cedar.Schema): FieldIssue[] {
  const answer = cedar.validate({ schema, policies: { staticPolicies: { ...parsed.policies } }, validationSettings: { mode: 'strict' } });
  if (answer.type === 'failure') return [{ path: 'policies', message: describe(answer.errors, parsed.text, 0) }];
  return answer.validationErrors.map(({ policyId, error }) => ({
    path: `policies.${policyId}`,
    message: `${policyId}: ${describe([error], parsed.text, parsed.offsets[policyId] ?? 0)}`,
  }));
}

function describe(errors: readonly cedar.DetailedError[], text: string, base: number): string {
  return errors
    .map((error) => {
      const at = error.sourceLocations?.[0];
      return `${at ? `${position(text, base + at.start)}: ` : ''}${error.message}${error.help ? ` (${error.help})` : ''}`;
    })
    .join('; ');
}

/** `line L, column C` of an offset (1-based). */
function position(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

function refuse(message: string): never {
  throw new MandateError('invalid_request', message, { issues: [{ path: 'policies', message }] });
}
