import { z } from 'zod';
import { userRefSchema } from './authorizer.js';
import { actorSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { defineEvent } from './event.js';
import { gatewayNameSchema } from './gateway.js';
import { pageOf, tenantPageRequest } from './paging.js';
import { POLICY_SERVICE, policyNameSchema } from './policy.js';
import { tenantIdSchema } from './tenant.js';

/**
 * Approvals: a person's decision on one tool call that policy permits only with a person's
 * approval. The policy service owns them (policy says which calls need one and who approves);
 * the gateway opens and consumes them, the consent service serves the approvals page.
 */
export const approvalIdSchema = z.string().regex(/^apr_[A-Za-z0-9_-]{22,64}$/, 'must be an approval id (apr_…)');

/** Who may decide: the user the agent acts for, or anyone holding an IdP group or role (the token's `groups` / `roles` claims). */
export const approverSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('user') }),
  z.object({ kind: z.literal('group'), name: z.string().min(1).max(256) }),
  z.object({ kind: z.literal('role'), name: z.string().min(1).max(256) }),
]);
export type Approver = z.output<typeof approverSchema>;

/** A person deciding, as verified by whoever signed them in (the consent service, or the authorizer for a token). */
export const verifiedApproverSchema = userRefSchema.extend({
  groups: z.array(z.string().max(256)).max(256).default([]),
  roles: z.array(z.string().max(256)).max(256).default([]),
  /** A name to show beside the decision (the ID token's `name` or `email`), never used to decide. */
  displayName: z.string().max(256).optional(),
});
export type VerifiedApprover = z.output<typeof verifiedApproverSchema>;

/**
 * Whether `person` is one of `approvers` of a call made for `user`. Groups and roles are names an
 * identity provider gives: only the one that signed the user's token (the gateway's) says who holds
 * `finance`; the same name from another IdP of the tenant (a partner's) is someone else's group.
 * The one rule both the policy service (which decides) and the approvals page (which shows) apply.
 */
export function isApproverOf(approvers: readonly Approver[], person: { iss: string; sub: string; groups: readonly string[]; roles: readonly string[] }, user: { iss: string; sub: string }): boolean {
  if (person.iss !== user.iss) return false;
  return approvers.some((approver) => {
    switch (approver.kind) {
      case 'user':
        return person.sub === user.sub;
      case 'group':
        return person.groups.includes(approver.name);
      case 'role':
        return person.roles.includes(approver.name);
    }
  });
}

export const approvalStateSchema = z.enum(['requested', 'approved', 'denied', 'expired', 'consumed']);
export type ApprovalState = z.output<typeof approvalStateSchema>;

/** One argument as a person reads it: its title (or name) and its value rendered as text. */
export const renderedArgumentSchema = z.object({ name: z.string(), title: z.string(), value: z.string() });

export const approvalViewSchema = z.object({
  tenant: tenantIdSchema,
  id: approvalIdSchema,
  state: approvalStateSchema,
  gateway: gatewayNameSchema,
  /** The tool's gateway name (`<target>___<tool>`), its target, and the title a person reads. */
  tool: z.string(),
  target: z.string(),
  toolTitle: z.string(),
  /** What the approver sees; the exact arguments are bound by `digest`. */
  arguments: z.array(renderedArgumentSchema),
  /** The user the agent acts for, and the agent (the inbound token's client). */
  user: userRefSchema,
  agent: z.string().optional(),
  approvers: z.array(approverSchema).min(1),
  /** A short text that says what is being approved, shown on the page and sent in the event. */
  bindingMessage: z.string(),
  /** `approvalDigest` (libs/tool-policy): the `callDigest` of (tenant, user, agent, gateway, tool, arguments) bound to who may approve and to the target (its name and when it was added). */
  digest: z.string(),
  policy: z.object({ name: policyNameSchema, version: z.string(), determining: z.array(z.string()) }),
  requestedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  decidedAt: z.iso.datetime().optional(),
  decidedBy: userRefSchema.extend({ displayName: z.string().optional() }).optional(),
  comment: z.string().optional(),
  consumedAt: z.iso.datetime().optional(),
});
export type ApprovalView = z.output<typeof approvalViewSchema>;

const endpoint = endpointsOf(POLICY_SERVICE);

export const approvalRequestEndpoint = endpoint(
  'approval-request',
  'Holds a call for approval (for the gateway): opens an approval request bound to the call digest, or answers the open one for the same digest.',
  z.strictObject({
    tenant: tenantIdSchema,
    gateway: gatewayNameSchema,
    tool: z.string().min(1).max(512),
    target: z.string().min(1).max(128),
    toolTitle: z.string().max(512),
    arguments: z.array(renderedArgumentSchema).max(256),
    user: userRefSchema,
    agent: z.string().max(512).optional(),
    approvers: z.array(approverSchema).min(1).max(16),
    digest: z.string().min(1).max(128),
    policy: z.object({ name: policyNameSchema, version: z.string().max(128), determining: z.array(z.string().max(256)).max(64) }),
    ttlSeconds: z.number().int().min(10).max(7 * 24 * 3600),
  }),
  approvalViewSchema,
);

/** What agent code waiting on an approval learns of it: its state and times, none of what it binds (arguments, user, who decided and why). */
export const approvalStatusSchema = z.object({
  tenant: tenantIdSchema,
  id: approvalIdSchema,
  state: approvalStateSchema,
  expiresAt: z.iso.datetime(),
  decidedAt: z.iso.datetime().optional(),
});
export type ApprovalStatus = z.output<typeof approvalStatusSchema>;

export const approvalStatusEndpoint = endpoint(
  'approval-status',
  "An approval's state and expiry, and nothing of what it binds (for agent code waiting on it, `waitForApproval`).",
  z.strictObject({ tenant: tenantIdSchema, id: approvalIdSchema }),
  approvalStatusSchema,
);

export const approvalConsumeEndpoint = endpoint(
  'approval-consume',
  'Uses the approved approval for this exact call once (for the gateway): `consumed` with its id, or why not (none, still requested, denied, expired).',
  z.strictObject({ tenant: tenantIdSchema, digest: z.string().min(1).max(128) }),
  z.discriminatedUnion('consumed', [
    z.object({ consumed: z.literal(true), approval: approvalViewSchema }),
    z.object({ consumed: z.literal(false), state: z.enum(['none', 'requested', 'denied', 'expired']), approval: approvalViewSchema.optional() }),
  ]),
);

export const approvalGetEndpoint = endpoint('approval-get', 'One approval request.', z.strictObject({ tenant: tenantIdSchema, id: approvalIdSchema }), approvalViewSchema);

export const approvalListEndpoint = endpoint(
  'approval-list',
  "A page of the tenant's approval requests, newest first; with `approver`, only those that person may decide.",
  tenantPageRequest.extend({ state: approvalStateSchema.optional(), gateway: gatewayNameSchema.optional(), approver: verifiedApproverSchema.optional() }),
  pageOf(approvalViewSchema),
);

export const approvalDecideEndpoint = endpoint(
  'approval-decide',
  'Approves or denies a requested approval, as a person who may: `approver` as verified by a trusted caller (the consent service), or `approverToken`, a token of the gateway\'s IdP for the gateway, verified by the authorizer.',
  z
    .strictObject({
      tenant: tenantIdSchema,
      id: approvalIdSchema,
      decision: z.enum(['approve', 'deny']),
      comment: z.string().max(1024).optional(),
      approver: verifiedApproverSchema.optional(),
      approverToken: z.string().min(1).max(16 * 1024).optional(),
      actor: actorSchema,
    })
    .refine((request) => (request.approver === undefined) !== (request.approverToken === undefined), 'give exactly one of approver and approverToken'),
  approvalViewSchema,
);

export const approvalEndpoints = [approvalRequestEndpoint, approvalConsumeEndpoint, approvalGetEndpoint, approvalStatusEndpoint, approvalListEndpoint, approvalDecideEndpoint] as const;

/** A call is held for approval: a chat bot or pager can tell the approvers. Its message names the tool, user and agent, never the arguments (those are shown on the approvals page). */
export const approvalRequestedEvent = defineEvent({
  service: POLICY_SERVICE,
  name: 'approval-requested',
  description: 'A tool call is held until a person approves it; tells approvers where to decide.',
  data: z.object({ id: approvalIdSchema, gateway: gatewayNameSchema, tool: z.string(), user: userRefSchema, approvers: z.array(approverSchema), bindingMessage: z.string(), expiresAt: z.iso.datetime() }),
});

/** An approval was decided (or expired): `waitForApproval` wakes on it. */
export const approvalDecidedEvent = defineEvent({
  service: POLICY_SERVICE,
  name: 'approval-decided',
  description: 'An approval request was approved, denied or expired.',
  data: z.object({ id: approvalIdSchema, state: z.enum(['approved', 'denied', 'expired']), digest: z.string() }),
});

/**
 * Where a held call's tool error says which approval it waits for (`_meta` of the `tools/call`
 * result): `{ code: 'approval_required', id, state, expiresAt, url? }`, so an agent can hand the id
 * to `waitForApproval` without reading the message.
 */
export const APPROVAL_META_KEY = 'io.mandate/approval';
