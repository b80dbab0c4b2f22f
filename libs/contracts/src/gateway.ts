import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { actorSchema, deletedSchema } from './changes.js';
import { workloadNameSchema } from './directory.js';
import { defineEndpoint } from './endpoint.js';
import { defineEvent } from './event.js';
import { pageOf, pageRequest } from './paging.js';
import { tenantIdSchema } from './tenant.js';
import { providerNameSchema, scopesSchema } from './vault.js';

/**
 * The tool gateway: an MCP server (Streamable HTTP) in front of upstream tools. Agents reach it
 * with a user's token whose audience is the gateway; it lists each principal only the tools its
 * scopes allow, gets each target's credential from the vault, calls the target and audits.
 */
export const GATEWAY_SERVICE = 'gateway';

/** Between a target's name and its tool's name in the name a client sees: `<target>___<tool>`. */
export const TOOL_NAME_SEPARATOR = '___';

const nameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit');
export const gatewayNameSchema = nameSchema;
/** A dash-only name cannot contain the separator, so `<target>___<tool>` always splits one way. */
export const targetNameSchema = nameSchema;
/** As upstream servers name tools (MCP: 1-128 of A-Z a-z 0-9 _ - . /). */
export const upstreamToolNameSchema = z.string().regex(/^[A-Za-z0-9_./-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 _ - . /');

/**
 * How a target's tools are named at the gateway: `prefixed` (the default) as
 * `<target>___<tool>`, which cannot collide; `as-given` by the target's own names, for clients
 * that call tools by their well-known names. An as-given name may not contain the separator (so it
 * is never a prefixed name) and may not be another as-given target's: either is refused when the
 * target is added or synced, and the target keeps the tools it had.
 */
export const toolNamesSchema = z.enum(['prefixed', 'as-given']);
export type ToolNames = z.output<typeof toolNamesSchema>;

/** A tool's name as a gateway's client sees it. */
export function gatewayToolName(target: { readonly name: string; readonly toolNames?: ToolNames | undefined }, tool: string): string {
  return target.toolNames === 'as-given' ? tool : `${target.name}${TOOL_NAME_SEPARATOR}${tool}`;
}

/** The target's name for a tool, from the name a gateway's client sees (see `gatewayToolName`). */
export function upstreamToolName(gatewayName: string): string {
  // A target's name has no separator, a tool's may: the first one splits a prefixed name.
  const separator = gatewayName.indexOf(TOOL_NAME_SEPARATOR);
  return separator < 0 ? gatewayName : gatewayName.slice(separator + TOOL_NAME_SEPARATOR.length);
}

/** How the gateway authenticates to a target: always through the vault, never with the caller's token. */
export const targetCredentialSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('none') }),
  /** The provider's API key, sent as `Authorization: Bearer` (or the header named). */
  z.strictObject({ kind: z.literal('api-key'), provider: providerNameSchema, header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/).optional() }),
  /** Client credentials as the gateway's own workload. */
  z.strictObject({ kind: z.literal('oauth2-m2m'), provider: providerNameSchema, scopes: scopesSchema.default([]) }),
  /** The user's token at the provider, with consent (URL elicitation when there is none yet). */
  z.strictObject({
    kind: z.literal('oauth2-user'),
    provider: providerNameSchema,
    scopes: scopesSchema.default([]),
    /** Extra authorization request parameters, e.g. RFC 8707 `resource`. */
    customParameters: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), z.string().max(1024)).optional(),
  }),
]);
export type TargetCredential = z.output<typeof targetCredentialSchema>;

/** What the gateway shows of one upstream tool, and which scopes a principal needs to see and call it. */
export const toolBindingSchema = z.strictObject({
  tool: upstreamToolNameSchema,
  /** Instead of the target's default scopes. */
  requiredScopes: scopesSchema.optional(),
  displayName: z.string().min(1).max(128).optional(),
  description: z.string().max(4096).optional(),
  hidden: z.boolean().default(false),
});
export type ToolBinding = z.output<typeof toolBindingSchema>;

/** One tool as discovered at the target (MCP `tools/list`, or built from an OpenAPI operation). */
export const discoveredToolSchema = z.object({
  name: upstreamToolNameSchema,
  title: z.string().max(256).optional(),
  description: z.string().max(16_384).optional(),
  inputSchema: z.looseObject({ type: z.literal('object') }),
  outputSchema: z.looseObject({ type: z.literal('object') }).optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
});
export type DiscoveredTool = z.output<typeof discoveredToolSchema>;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
/** Where a target is: https, or http to this machine (development); never a file or another scheme. */
const webUrlSchema = z
  .url()
  .max(2048)
  .refine((value) => {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
  }, 'must be https (or http to localhost)');

export const targetSourceSchema = z.discriminatedUnion('kind', [
  /** An upstream MCP server over Streamable HTTP. */
  z.strictObject({ kind: z.literal('mcp'), url: webUrlSchema }),
  /**
   * An HTTP API described by an OpenAPI 3 document (fetched from `documentUrl`, or given inline):
   * each operation becomes a tool, named by its `operationId`.
   */
  z
    .strictObject({
      kind: z.literal('openapi'),
      documentUrl: webUrlSchema.optional(),
      document: z.record(z.string(), z.unknown()).optional(),
      /** Instead of the document's first server URL. */
      baseUrl: webUrlSchema.optional(),
    })
    .refine((source) => (source.documentUrl === undefined) !== (source.document === undefined), { message: 'give documentUrl or document, not both', path: ['documentUrl'] }),
]);
export type TargetSource = z.output<typeof targetSourceSchema>;

export const targetSpecSchema = z.strictObject({
  name: targetNameSchema,
  source: targetSourceSchema,
  credential: targetCredentialSchema.default({ kind: 'none' }),
  /** Scopes a principal needs for this target's tools unless a binding says otherwise; empty: every principal of the gateway. */
  defaultScopes: scopesSchema.default([]),
  bindings: z.array(toolBindingSchema).max(1000).default([]),
  /** Absent: `prefixed`. */
  toolNames: toolNamesSchema.optional(),
  /** Milliseconds one call may take at the target. */
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
});
export type TargetSpec = z.output<typeof targetSpecSchema>;

export const targetViewSchema = targetSpecSchema.extend({
  tools: z.array(discoveredToolSchema),
  syncedAt: z.iso.datetime(),
  /** The last sync could not reach the target: its tools are left out until one succeeds. */
  unreachableSince: z.iso.datetime().optional(),
  /** When it was added: a target removed and added again (or another of the same name) is another target (absent on targets added before it was kept). */
  addedAt: z.iso.datetime().optional(),
  revision: z.number().int(),
});
export type TargetView = z.output<typeof targetViewSchema>;

/**
 * One interceptor of a gateway: a NATS subject asked on every call (request phase: before the
 * credential is fetched; response phase: before the result is returned), so one can be written
 * in any language. It answers within `timeoutMs`, or the call is refused unless `failOpen`.
 */
export const interceptorSchema = z.strictObject({
  phase: z.enum(['request', 'response']),
  /**
   * Under `mandate.interceptor.` (the gateway's NATS user may publish there and to nothing an
   * operator could mistake for one, such as the audit stream), without wildcards.
   */
  subject: z.string().regex(/^mandate\.interceptor(\.[A-Za-z0-9_-]+)+$/, 'a NATS subject under mandate.interceptor., without wildcards').max(255),
  timeoutMs: z.number().int().min(10).max(30_000).default(2_000),
  failOpen: z.boolean().default(false),
});
export type Interceptor = z.output<typeof interceptorSchema>;

/** What an interceptor is sent: the call and the principal's verified claims, never a credential or the caller's token. */
export const interceptedCallSchema = z.object({
  phase: z.enum(['request', 'response']),
  tenant: tenantIdSchema,
  gateway: gatewayNameSchema,
  target: targetNameSchema,
  tool: upstreamToolNameSchema,
  principal: z.object({ iss: z.string(), sub: z.string(), clientId: z.string().optional(), scopes: z.array(z.string()), claims: z.record(z.string(), z.unknown()) }),
  arguments: z.record(z.string(), z.unknown()),
  /** The target's result (response phase only). */
  result: z.looseObject({ content: z.array(z.unknown()) }).optional(),
});
export type InterceptedCall = z.output<typeof interceptedCallSchema>;

/** A request interceptor's answer: let the call go, refuse it (the reason is shown to the client), or change its arguments. */
export const requestInterceptorAnswerSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('allow') }),
  z.object({ action: z.literal('deny'), reason: z.string().min(1).max(1024) }),
  z.object({ action: z.literal('rewrite'), arguments: z.record(z.string(), z.unknown()) }),
]);

/** A response interceptor's answer: the result as it is, or redacted (replaced). */
export const responseInterceptorAnswerSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('pass') }),
  z.object({ action: z.literal('redact'), result: z.looseObject({ content: z.array(z.unknown()), isError: z.boolean().optional() }) }),
]);

const privateJwkSchema = z.looseObject({ kty: z.string(), kid: z.string().min(1).max(128), d: z.string() });

export const gatewayViewSchema = z.object({
  tenant: tenantIdSchema,
  name: gatewayNameSchema,
  description: z.string(),
  /** The gateway's own workload in the directory: its inbound authorizer config is the gateway's. */
  workload: workloadNameSchema,
  /** RFC 8707 / RFC 9728: the resource its tokens must name as audience, and where MCP clients connect. */
  resourceUrl: z.string(),
  /** The authorization servers its protected-resource metadata names. */
  authorizationServers: z.array(z.string()),
  /** The scopes its protected-resource metadata lists as supported. */
  scopesSupported: z.array(z.string()),
  /** Asked on every call, in this order. */
  interceptors: z.array(interceptorSchema),
  targets: z.array(z.string()),
  createdAt: z.iso.datetime(),
  revision: z.number().int(),
});
export type GatewayView = z.output<typeof gatewayViewSchema>;

const gatewayRef = { tenant: tenantIdSchema, name: gatewayNameSchema };
const actor = { actor: actorSchema };

export const gatewayCreateEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'gateway-create',
  description: "Registers a gateway for a workload; the key proves the gateway to the authorizer (it is sealed, and checked by minting a WAT).",
  request: z.strictObject({
    ...gatewayRef,
    ...actor,
    description: z.string().max(4096).default(''),
    workload: z.strictObject({ name: workloadNameSchema, privateJwk: privateJwkSchema }),
    authorizationServers: z.array(z.url().max(2048)).min(1).max(8),
    scopesSupported: scopesSchema.default([]),
    interceptors: z.array(interceptorSchema).max(16).default([]),
  }),
  response: gatewayViewSchema,
});

export const gatewayGetEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'gateway-get',
  description: 'One gateway.',
  request: z.strictObject(gatewayRef),
  response: gatewayViewSchema,
});

export const gatewayListEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'gateway-list',
  description: "A page of the tenant's gateways, by name.",
  request: z.strictObject({ tenant: tenantIdSchema, ...pageRequest }),
  response: pageOf(gatewayViewSchema),
});

export const gatewayDeleteEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'gateway-delete',
  description: 'Deletes a gateway and its targets; its MCP endpoint answers 404 from then on.',
  request: z.strictObject({ ...gatewayRef, ...actor }),
  response: deletedSchema,
});

const targetRef = { tenant: tenantIdSchema, gateway: gatewayNameSchema };

/**
 * The policy set attached to a gateway no longer validates against its tools (a tool it names was
 * removed or changed type): told to whoever changed the tools, and on the change's audit record.
 * The gateway refuses every call until the set or the tools are fixed.
 */
export const policyMisfitSchema = z.object({
  set: z.string(),
  version: z.number().int(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })),
});
export type PolicyMisfit = z.infer<typeof policyMisfitSchema>;

/** What a change of a gateway's tools answers: the target, and the attached set it broke, if any. */
const targetChangeSchema = targetViewSchema.extend({ policyMisfit: policyMisfitSchema.optional() });

export const targetAddEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'target-add',
  description: "Adds a target and discovers its tools (MCP tools/list); a target that cannot be reached, or a binding to a tool it lacks, is refused.",
  request: z.strictObject({
    ...targetRef,
    ...actor,
    // A fetched document's first server would decide, at every sync, where the target's credential goes: name the base URL.
    target: targetSpecSchema.refine((target) => !(target.source.kind === 'openapi' && target.source.documentUrl && !target.source.baseUrl && target.credential.kind !== 'none'), {
      message: 'an OpenAPI target fetched from documentUrl with a credential needs baseUrl: the document must not decide where the credential is sent',
      path: ['source', 'baseUrl'],
    }),
  }),
  response: targetChangeSchema,
});

export const targetListEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'target-list',
  description: "A gateway's targets with the tools discovered at each.",
  request: z.strictObject(targetRef),
  response: z.object({ items: z.array(targetViewSchema) }),
});

export const targetRemoveEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'target-remove',
  description: 'Removes a target; its tools disappear from the gateway.',
  request: z.strictObject({ ...targetRef, ...actor, target: targetNameSchema }),
  response: z.object({ removed: z.literal(true), policyMisfit: policyMisfitSchema.optional() }),
});

export const targetSyncEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'target-sync',
  description: 'Discovers the tools of a target again.',
  request: z.strictObject({ ...targetRef, ...actor, target: targetNameSchema }),
  response: targetChangeSchema,
});

/** Why a tool is not shown to a principal (the last two: the gateway's enforced policy set). */
export const hiddenReasonSchema = z.enum(['hidden_by_binding', 'missing_scopes', 'target_unreachable', 'name_clash', 'denied_by_policy', 'policy_unloadable']);

export const toolsForEndpoint = defineEndpoint({
  service: GATEWAY_SERVICE,
  operation: 'tools-for',
  description: 'What the principal of a token would see at the gateway, and why each other tool is hidden.',
  request: z.strictObject({ ...targetRef, token: z.string().min(1).max(256 * 1024) }),
  response: z.object({
    principal: z.object({ iss: z.string(), sub: z.string(), scopes: z.array(z.string()) }),
    visible: z.array(z.object({ name: z.string(), target: z.string(), tool: z.string() })),
    hidden: z.array(z.object({ name: z.string(), target: z.string(), tool: z.string(), reason: hiddenReasonSchema, missingScopes: z.array(z.string()).optional() })),
  }),
});

export const gatewayEndpoints = [
  gatewayCreateEndpoint,
  gatewayGetEndpoint,
  gatewayListEndpoint,
  gatewayDeleteEndpoint,
  targetAddEndpoint,
  targetListEndpoint,
  targetRemoveEndpoint,
  targetSyncEndpoint,
  toolsForEndpoint,
] as const;

/** Replicas drop what they hold of the gateway and read it again. */
export const gatewayChangedEvent = defineEvent({
  service: GATEWAY_SERVICE,
  name: 'gateway-changed',
  description: 'A gateway, or one of its targets, was created, changed or deleted.',
  data: z.object({ gateway: gatewayNameSchema }),
});

export const gatewayAudit = defineAuditActions(GATEWAY_SERVICE, ['gateway-create', 'gateway-delete', 'target-add', 'target-remove', 'target-sync', 'tool-call', 'receipt-key-rotate']);
