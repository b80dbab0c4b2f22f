import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { actorSchema, deletedSchema, expectedRevisionSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { pageOf, tenantPageRequest } from './paging.js';
import { defineEvent } from './event.js';
import { tenantIdSchema } from './tenant.js';

/**
 * The directory service: workload identities and their inbound authorizer configs.
 * Every request names its tenant; a workload is known by its name, unique per tenant.
 */
export const DIRECTORY_SERVICE = 'directory';

export const WORKLOAD_NAME_PATTERN = /^[A-Za-z0-9_.-]{3,255}$/;

export const workloadNameSchema = z.string().regex(WORKLOAD_NAME_PATTERN, 'must be 3-255 characters of A-Z a-z 0-9 _ . -');

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https anywhere, plain http only to this machine (a developer's local app). */
function isAllowedScheme(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

function parseAbsoluteUrl(value: string): URL | undefined {
  // `URL.canParse` without a base refuses relative forms such as `//host` or `/\host`.
  return URL.canParse(value) ? new URL(value) : undefined;
}

/**
 * Where the consent flow may send the person back to. Exact match later, so it is stored in the
 * URL's canonical form; no credentials, no fragment, https (or http to localhost).
 */
export const returnUrlSchema = z
  .string()
  .max(2048)
  .transform((value, ctx) => {
    const url = parseAbsoluteUrl(value);
    if (!url || !isAllowedScheme(url)) {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute https URL (http only for localhost)' });
      return z.NEVER;
    }
    if (url.username || url.password || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'must not contain credentials or a fragment' });
      return z.NEVER;
    }
    return url.href;
  });

export const OIDC_DISCOVERY_SUFFIX = '/.well-known/openid-configuration';

/** An IdP's OIDC discovery document URL; the issuer it names must be this URL without the suffix. */
export const discoveryUrlSchema = z
  .string()
  .max(2048)
  .refine((value) => {
    const url = parseAbsoluteUrl(value);
    return !!url && isAllowedScheme(url) && !url.username && !url.password && !url.search && !url.hash && url.pathname.endsWith(OIDC_DISCOVERY_SUFFIX);
  }, `must be an https URL (http only for localhost) ending in ${OIDC_DISCOVERY_SUFFIX}, without query or fragment`);

/** Members that only a private or symmetric JWK has. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export const ASYMMETRIC_JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** A workload's public key for client assertions. Private members are refused outright. */
export const publicJwkSchema = z
  .looseObject({
    kty: z.enum(['RSA', 'EC', 'OKP']),
    kid: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters'),
    alg: z.enum(ASYMMETRIC_JWS_ALGORITHMS).optional(),
    use: z.literal('sig').optional(),
  })
  .refine((jwk) => PRIVATE_JWK_MEMBERS.every((member) => !(member in jwk)), 'must be a public key: private key members are refused');

export const publicJwkSetSchema = z
  .object({ keys: z.array(publicJwkSchema).max(10) })
  .refine((set) => new Set(set.keys.map((k) => k.kid)).size === set.keys.length, 'kid values must be unique');

export type PublicJwk = z.output<typeof publicJwkSchema>;

export const tagsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9_.:/-]{1,128}$/, 'tag keys are 1-128 characters of A-Z a-z 0-9 _ . : / -'), z.string().max(256))
  .refine((tags) => Object.keys(tags).length <= 50, 'at most 50 tags');

const claimNameSchema = z.string().min(1).max(256);
const claimValueSchema = z.string().min(1).max(1024);

/**
 * A custom claim the inbound token must carry. `equals`: a string claim equal to `value`;
 * `contains`: a string-array claim that includes `value`; `containsAny`: a string claim equal to,
 * or a string-array claim including, one of `value`.
 */
export const claimRuleSchema = z.discriminatedUnion('operator', [
  z.strictObject({ claim: claimNameSchema, valueType: z.literal('string'), operator: z.literal('equals'), value: claimValueSchema }),
  z.strictObject({ claim: claimNameSchema, valueType: z.literal('string[]'), operator: z.literal('contains'), value: claimValueSchema }),
  z.strictObject({
    claim: claimNameSchema,
    valueType: z.enum(['string', 'string[]']),
    operator: z.literal('containsAny'),
    value: z.array(claimValueSchema).min(1).max(64),
  }),
]);

export type ClaimRule = z.output<typeof claimRuleSchema>;

/** Who may call a workload: which IdP, and what its tokens must say. */
export const authorizerConfigSchema = z
  .strictObject({
    discoveryUrl: discoveryUrlSchema,
    /** The token's `aud` must contain one of these. */
    allowedAudiences: z.array(z.string().min(1).max(1024)).max(32).default([]),
    /** The token's `client_id` (or `azp`) must be one of these; for IdPs whose access tokens carry no `aud`. */
    allowedClients: z.array(z.string().min(1).max(255)).max(32).default([]),
    /** When set, the token's scopes must include at least one of these. */
    allowedScopes: z.array(z.string().min(1).max(256)).max(64).default([]),
    requiredClaims: z.array(claimRuleSchema).max(16).default([]),
  })
  .refine((config) => config.allowedAudiences.length > 0 || config.allowedClients.length > 0, {
    message: 'set allowedAudiences or allowedClients (or both): a token meant for anyone is not accepted',
    path: ['allowedAudiences'],
  });

export type AuthorizerConfig = z.output<typeof authorizerConfigSchema>;

const workloadFields = {
  description: z.string().max(4096),
  allowedReturnUrls: z.array(returnUrlSchema).max(32),
  /** May this workload ask for a WAT naming a bare user id (trusted back ends only)? */
  allowUserIdTokens: z.boolean(),
  publicKeys: publicJwkSetSchema,
  tags: tagsSchema,
};

export const workloadSchema = z.object({
  tenant: tenantIdSchema,
  name: workloadNameSchema,
  description: z.string(),
  allowedReturnUrls: z.array(z.string()),
  allowUserIdTokens: z.boolean(),
  publicKeys: z.object({ keys: z.array(publicJwkSchema) }),
  tags: z.record(z.string(), z.string()),
  authorizer: authorizerConfigSchema.nullable(),
  /** Pass back as `expectedRevision` to make a change conditional on nobody else's change. */
  revision: z.number().int(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type Workload = z.output<typeof workloadSchema>;

const endpoint = endpointsOf(DIRECTORY_SERVICE);
const workloadRef = { tenant: tenantIdSchema, name: workloadNameSchema };
const revisionAndActor = { expectedRevision: expectedRevisionSchema, actor: actorSchema };

export const workloadCreateEndpoint = endpoint(
  'workload-create',
  'Registers a workload identity; conflict if the name is taken in the tenant.',
  z.strictObject({
    ...workloadRef,
    description: workloadFields.description.default(''),
    allowedReturnUrls: workloadFields.allowedReturnUrls.default([]),
    allowUserIdTokens: workloadFields.allowUserIdTokens.default(false),
    publicKeys: workloadFields.publicKeys.default({ keys: [] }),
    tags: workloadFields.tags.default({}),
    authorizer: authorizerConfigSchema.optional(),
    actor: actorSchema,
  }),
  workloadSchema,
);

export const workloadGetEndpoint = endpoint('workload-get', 'Reads one workload with its keys and authorizer config.', z.strictObject(workloadRef), workloadSchema);

const changedFields = z.strictObject(workloadFields).partial().refine((set) => Object.keys(set).length > 0, 'name at least one field to change');
export const workloadUpdateEndpoint = endpoint(
  'workload-update',
  'Replaces the given fields; with expectedRevision, only if nobody changed it since.',
  z.strictObject({ ...workloadRef, set: changedFields, ...revisionAndActor }),
  workloadSchema,
);

export const workloadDeleteEndpoint = endpoint('workload-delete', 'Deletes a workload; not_found if there is none.', z.strictObject({ ...workloadRef, ...revisionAndActor }), deletedSchema);

export const workloadListEndpoint = endpoint('workload-list', 'Lists the workloads of a tenant, one page at a time.', tenantPageRequest, pageOf(workloadSchema));

export const authorizerSetEndpoint = endpoint(
  'authorizer-set',
  "Sets (or with null, removes) a workload's inbound authorizer config.",
  z.strictObject({ ...workloadRef, authorizer: authorizerConfigSchema.nullable(), ...revisionAndActor }),
  workloadSchema,
);

export const directoryEndpoints = [
  workloadCreateEndpoint,
  workloadGetEndpoint,
  workloadUpdateEndpoint,
  workloadDeleteEndpoint,
  workloadListEndpoint,
  authorizerSetEndpoint,
] as const;

export const workloadChangedEvent = defineEvent({
  service: DIRECTORY_SERVICE,
  name: 'workload-changed',
  description: "A workload was created, changed or deleted: caches of it (the authorizer's) drop the entry.",
  data: z.object({ name: workloadNameSchema, change: z.enum(['created', 'updated', 'deleted']), revision: z.number().int() }),
});

export type WorkloadChanged = z.output<typeof workloadChangedEvent.data>;

export const directoryAudit = defineAuditActions(DIRECTORY_SERVICE, ['workload-create', 'workload-update', 'workload-delete', 'authorizer-set']);
