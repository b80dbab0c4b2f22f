import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { actorSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { defineEvent } from './event.js';
import { gatewayNameSchema } from './gateway.js';
import { tenantPageRequest, pageOf } from './paging.js';
import { tenantIdSchema } from './tenant.js';

/**
 * The policy service: policy sets (Cedar text) per tenant, their immutable versions, and which
 * gateway enforces which set in which mode. Evaluation runs inside the gateway.
 */
export const POLICY_SERVICE = 'policy';

export const policyNameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit');
/** How a gateway applies its policy set: decisions enforced, or only recorded beside an allow. */
export const policyModeSchema = z.enum(['enforce', 'log-only']);
export type PolicyMode = z.output<typeof policyModeSchema>;

const policyText = z.string().max(200 * 1024);

export const policyVersionSchema = z.object({
  version: z.number().int().min(1),
  /** SHA-256 of the text (base64url): what decisions and receipts name. */
  hash: z.string(),
  createdAt: z.iso.datetime(),
  actor: z.string().optional(),
});

export const policyViewSchema = z.object({
  tenant: tenantIdSchema,
  name: policyNameSchema,
  description: z.string(),
  /** The version gateways enforce. */
  active: policyVersionSchema,
  /** The active version's text. */
  text: z.string(),
  versions: z.number().int(),
  /** Gateways this set is attached to, with their mode. */
  attachedTo: z.array(z.object({ gateway: gatewayNameSchema, mode: policyModeSchema })),
  revision: z.number().int(),
});
export type PolicyView = z.output<typeof policyViewSchema>;

const policyRef = { tenant: tenantIdSchema, name: policyNameSchema };
const endpoint = endpointsOf(POLICY_SERVICE);

export const policyCreateEndpoint = endpoint(
  'policy-create',
  'Creates a policy set (version 1, active); the text is parsed and checked against the limits.',
  z.strictObject({ ...policyRef, description: z.string().max(4096).default(''), text: policyText, actor: actorSchema }),
  policyViewSchema,
);

export const policyUpdateEndpoint = endpoint(
  'policy-update',
  'Writes a new version and makes it active; refused if it does not validate against the tools of a gateway it is attached to.',
  z.strictObject({ ...policyRef, text: policyText, actor: actorSchema }),
  policyViewSchema,
);

export const policyGetEndpoint = endpoint('policy-get', 'One policy set, with its active text.', z.strictObject(policyRef), policyViewSchema);

export const policyListEndpoint = endpoint('policy-list', "A page of the tenant's policy sets.", tenantPageRequest, pageOf(policyViewSchema));

export const policyVersionsEndpoint = endpoint(
  'policy-versions',
  'Every version of a policy set, newest first.',
  z.strictObject(policyRef),
  z.object({ items: z.array(policyVersionSchema.extend({ active: z.boolean() })) }),
);

export const policyActivateEndpoint = endpoint(
  'policy-activate',
  'Makes an earlier (or later) version the active one: a rollback is activating the version before.',
  z.strictObject({ ...policyRef, version: z.number().int().min(1), actor: actorSchema }),
  policyViewSchema,
);

export const policyDeleteEndpoint = endpoint(
  'policy-delete',
  'Deletes a policy set and its versions; refused while a gateway has it attached.',
  z.strictObject({ ...policyRef, actor: actorSchema }),
  z.object({ deleted: z.literal(true) }),
);

export const policyAttachEndpoint = endpoint(
  'policy-attach',
  "Attaches a policy set to a gateway (or changes its mode); refused if the active version does not validate against the gateway's tools.",
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, policy: policyNameSchema, mode: policyModeSchema, actor: actorSchema }),
  z.object({ gateway: gatewayNameSchema, policy: policyNameSchema, mode: policyModeSchema, version: policyVersionSchema }),
);

export const policyDetachEndpoint = endpoint(
  'policy-detach',
  'Detaches the policy set of a gateway: its calls are no longer checked by policy.',
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, actor: actorSchema }),
  z.object({ detached: z.literal(true) }),
);

export const policyValidateEndpoint = endpoint(
  'policy-validate',
  "Checks a policy set's text: syntax and limits, and with a gateway its validation against that gateway's tools. Changes nothing.",
  z.strictObject({ tenant: tenantIdSchema, text: policyText, gateway: gatewayNameSchema.optional() }),
  z.object({ valid: z.boolean(), policies: z.array(z.string()), issues: z.array(z.object({ path: z.string(), message: z.string() })) }),
);

export const policyForGatewayEndpoint = endpoint(
  'policy-for-gateway',
  'The policy set a gateway enforces (its active version and mode), if one is attached; for the gateway.',
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema }),
  z.object({ attached: z.literal(false) }).or(z.object({ attached: z.literal(true), policy: policyNameSchema, mode: policyModeSchema, version: policyVersionSchema, text: z.string() })),
);

export const policyEndpoints = [
  policyCreateEndpoint,
  policyUpdateEndpoint,
  policyGetEndpoint,
  policyListEndpoint,
  policyVersionsEndpoint,
  policyActivateEndpoint,
  policyDeleteEndpoint,
  policyAttachEndpoint,
  policyDetachEndpoint,
  policyValidateEndpoint,
  policyForGatewayEndpoint,
] as const;

/** A gateway's policy changed (attached, detached, its mode or its set's active version): it loads it again. */
export const policyChangedEvent = defineEvent({
  service: POLICY_SERVICE,
  name: 'policy-changed',
  description: "A gateway's policy set, version or mode changed; the gateway reloads it.",
  data: z.object({ gateway: gatewayNameSchema }),
});

export const policyAudit = defineAuditActions(POLICY_SERVICE, ['policy-create', 'policy-update', 'policy-activate', 'policy-delete', 'policy-attach', 'policy-detach', 'approval-request', 'approval-decide', 'approval-consume', 'approval-expire', 'approval-refuse']);
