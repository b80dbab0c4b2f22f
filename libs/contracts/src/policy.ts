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
  "Attaches a policy set to a gateway in a mode (or another set in place of the one attached); refused if the active version does not validate against the gateway's tools, and refused (`conflict`) for the set already attached in another mode: that is `policy-set-mode`.",
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, policy: policyNameSchema, mode: policyModeSchema, actor: actorSchema }),
  z.object({ gateway: gatewayNameSchema, policy: policyNameSchema, mode: policyModeSchema, version: policyVersionSchema }),
);

/** Its own operation (and so its own NATS subject to grant), apart from attaching and editing sets: who may flip a set from log-only to enforce need not be who writes it. */
export const policySetModeEndpoint = endpoint(
  'policy-set-mode',
  'Changes the mode of the policy set attached to a gateway (enforce or log-only); audited as policy-mode. The same mode again changes nothing.',
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, mode: policyModeSchema, actor: actorSchema }),
  z.object({ gateway: gatewayNameSchema, policy: policyNameSchema, mode: policyModeSchema, previousMode: policyModeSchema, changed: z.boolean() }),
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

/** A duration back from now (`90m`, `12h`, `7d`) or an ISO time with its offset. */
export const replaySinceSchema = z.union([
  z.string().regex(/^[1-9][0-9]{0,5}[mhd]$/, 'must be a duration such as 90m, 12h or 7d, or an ISO time'),
  z.iso.datetime({ offset: true }),
]);

/** What replay reads at most: past this it answers with `truncated` and the time it reached. */
export const REPLAY_LIMITS = { entries: 50_000, samplesPerGroup: 10 } as const;

const replayChangeGroupSchema = z.object({
  tool: z.string(),
  principal: z.object({ iss: z.string(), sub: z.string() }),
  allowedToDenied: z.number().int(),
  deniedToAllowed: z.number().int(),
  /** Audit record ids of some of the calls that change (at most `REPLAY_LIMITS.samplesPerGroup`). */
  samples: z.array(z.string()),
});

export const policyReplayEndpoint = endpoint(
  'replay',
  "Evaluates a candidate policy set against the calls a gateway's decision log recorded since a time, and answers which decisions would change, grouped by tool and principal. Its answer is derived from the recorded arguments: admin only, audited.",
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, since: replaySinceSchema, candidate: policyText, actor: actorSchema }),
  z.object({
    gateway: gatewayNameSchema,
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    evaluated: z.number().int(),
    unchanged: z.number().int(),
    changed: z.object({ allowedToDenied: z.number().int(), deniedToAllowed: z.number().int() }),
    /** Entries not evaluated, by why (`tool_removed`: the gateway no longer has the tool; `unreadable`: the entry cannot be opened; `unrecognised`: an entry of a shape this version does not know). */
    skipped: z.record(z.string(), z.number().int()),
    groups: z.array(replayChangeGroupSchema),
    /** More than `REPLAY_LIMITS.entries` were recorded in the window: the replay stopped at `to`. */
    truncated: z.boolean(),
  }),
);

export const policyExplainEndpoint = endpoint(
  'explain',
  "One recorded decision from the decision log, by the call's audit record id: the request as Cedar saw it (arguments included), the decision and the text of the policies that made it. Admin only, audited.",
  z.strictObject({ tenant: tenantIdSchema, id: z.uuid(), actor: actorSchema }),
  z.object({
    id: z.string(),
    gateway: gatewayNameSchema,
    recordedAt: z.iso.datetime(),
    tool: z.string(),
    principal: z.object({ iss: z.string(), sub: z.string() }),
    /** The agent: the client the inbound token names. */
    client: z.string().optional(),
    claims: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
    scopes: z.array(z.string()),
    arguments: z.record(z.string(), z.unknown()),
    time: z.iso.datetime(),
    policySet: z.object({ name: z.string(), hash: z.string(), version: z.number().int().optional() }),
    mode: policyModeSchema,
    decision: z.enum(['allow', 'deny']),
    /** The policies that decided, with their text when the version is still kept. */
    determining: z.array(z.object({ id: z.string(), text: z.string().optional() })),
    withLogOnly: z.object({ decision: z.enum(['allow', 'deny']), determining: z.array(z.object({ id: z.string(), text: z.string().optional() })) }).optional(),
  }),
);

/**
 * One case of `mandate policy test`, after the Cedar CLI's test files: a request (the principal as
 * the token's claims say it, the tool as the action, the arguments as `context.input`), the
 * decision expected and, optionally, policies that must be among those that decide it.
 */
export const policyTestCaseSchema = z.strictObject({
  name: z.string().max(200).optional(),
  request: z.strictObject({
    principal: z.strictObject({
      iss: z.string().max(2048).default('https://idp.example'),
      sub: z.string().min(1).max(1024),
      groups: z.array(z.string().max(1024)).max(1000).default([]),
      /** The token's other string claims: `principal.getTag("department")`. */
      tags: z.record(z.string().max(256), z.string().max(4096)).default({}),
    }),
    /** The tool's gateway name, `<target>___<tool>`. */
    action: z.string().min(1).max(256),
    context: z
      .strictObject({
        input: z.record(z.string(), z.unknown()).default({}),
        scopes: z.array(z.string().max(256)).max(1000).default([]),
        /** Seconds since the epoch, as Cedar sees `context.time`; now when left out. */
        time: z.number().int().min(0).optional(),
        client: z.string().max(1024).optional(),
      })
      .default({ input: {}, scopes: [] }),
  }),
  decision: z.enum(['allow', 'deny']),
  /** Policies that must be among the determining ones (as the Cedar CLI checks `reason`). */
  reason: z.array(z.string()).default([]),
  /** How many policies may fail to evaluate; when given, checked exactly. */
  num_errors: z.number().int().min(0).optional(),
});
export type PolicyTestCase = z.output<typeof policyTestCaseSchema>;

/** At most this many cases per run. */
export const POLICY_TEST_LIMITS = { cases: 1_000 } as const;

export const policyTestEndpoint = endpoint(
  'test',
  "Runs test cases (requests with expected decisions) against a candidate text or, without one, the set attached to the gateway (its active version), with the schema generated from the gateway's current tools. Changes nothing.",
  z.strictObject({ tenant: tenantIdSchema, gateway: gatewayNameSchema, text: policyText.optional(), tests: z.array(policyTestCaseSchema).min(1).max(POLICY_TEST_LIMITS.cases) }),
  z.object({
    /** What was tested: the candidate text, or the attached set and its version. */
    policySet: z.object({ source: z.enum(['candidate', 'attached']), name: policyNameSchema.optional(), version: z.number().int().optional(), hash: z.string() }),
    passed: z.number().int(),
    failed: z.number().int(),
    results: z.array(
      z.object({
        name: z.string(),
        /** `invalid`: the case cannot be evaluated (an unknown tool, or arguments that do not match its input schema). */
        outcome: z.enum(['pass', 'fail', 'invalid']),
        expected: z.enum(['allow', 'deny']),
        decision: z.enum(['allow', 'deny']).optional(),
        determining: z.array(z.string()),
        errors: z.array(z.string()),
        /** Why it failed or is invalid. */
        message: z.string().optional(),
      }),
    ),
  }),
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
  policySetModeEndpoint,
  policyDetachEndpoint,
  policyValidateEndpoint,
  policyForGatewayEndpoint,
  policyReplayEndpoint,
  policyExplainEndpoint,
  policyTestEndpoint,
] as const;

/** A gateway's policy changed (attached, detached, its mode or its set's active version): it loads it again. */
export const policyChangedEvent = defineEvent({
  service: POLICY_SERVICE,
  name: 'policy-changed',
  description: "A gateway's policy set, version or mode changed; the gateway reloads it.",
  data: z.object({ gateway: gatewayNameSchema }),
});

export const policyAudit = defineAuditActions(POLICY_SERVICE, ['policy-create', 'policy-update', 'policy-activate', 'policy-delete', 'policy-attach', 'policy-mode', 'policy-detach', 'approval-request', 'approval-decide', 'approval-consume', 'approval-expire', 'approval-refuse', 'policy-replay', 'policy-explain']);
