import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { deletedSchema, expectedRevisionSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { pageOf, tenantPageRequest } from './paging.js';
import { defineEvent } from './event.js';
import { tenantIdSchema } from './tenant.js';
import { workloadNameSchema } from './directory.js';
import { userRefSchema } from './authorizer.js';
import { PRESET_NAMES, PRESET_PARAM_PATTERNS, PROVIDER_PRESETS } from './vault-presets.js';

/**
 * The vault: credential providers (OAuth2 clients and API keys, secrets sealed), and the tokens
 * it hands to workloads that present a valid WAT.
 */
export const VAULT_SERVICE = 'vault';

export const providerNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 _ . -');

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or http only to this machine (a local test server). */
export const endpointUrlSchema = z
  .string()
  .max(2048)
  .refine((value) => {
    if (!URL.canParse(value)) return false;
    const url = new URL(value);
    return (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) && !url.username && !url.password && !url.hash;
  }, 'must be an https URL (http only for localhost), without credentials or fragment');

const scopeSchema = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/, 'a scope is 1-256 printable characters without space, quote or backslash');
export const scopesSchema = z.array(scopeSchema).max(64);

export const clientAuthMethodSchema = z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt']);

/** Explicit endpoints, for a custom provider without discovery. */
export const authorizationServerMetadataSchema = z.strictObject({
  issuer: z.string().min(1).max(2048).optional(),
  authorizationEndpoint: endpointUrlSchema.optional(),
  tokenEndpoint: endpointUrlSchema,
  revocationEndpoint: endpointUrlSchema.optional(),
});

/** Self-declared operator name recorded in the audit trail; unlike `actorSchema` (changes.ts), the vault has always taken an empty one. */
const actor = z.string().max(255).optional();
/** Workloads that may use a provider; nobody else gets anything from it. */
const allowedWorkloadsSchema = z.array(workloadNameSchema).max(256);

const secretFields = {
  /** For client_secret_basic / client_secret_post. Sealed at rest, never returned. */
  clientSecret: z.string().min(1).max(4096).optional(),
  /** For private_key_jwt: the client's private signing key. Sealed at rest, never returned. */
  clientPrivateJwk: z.looseObject({ kty: z.string(), kid: z.string().min(1).max(128), d: z.string() }).optional(),
};

const vendorParamsSchema = z.record(z.string().regex(/^[A-Za-z]{1,32}$/), z.string().max(253));

const tokenParametersSchema = z
  .record(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'parameter names are lower-case OAuth parameter names'), z.string().max(2048))
  .refine((params) => !['grant_type', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'scope', 'refresh_token', 'code'].some((name) => name in params), 'protocol parameters are set by the vault, not here');

const oauth2Fields = {
  description: z.string().max(4096).default(''),
  vendor: z.enum([...PRESET_NAMES, 'custom']),
  vendorParams: vendorParamsSchema.default({}),
  discoveryUrl: endpointUrlSchema.optional(),
  metadata: authorizationServerMetadataSchema.optional(),
  clientId: z.string().min(1).max(512),
  /** Default: private_key_jwt when only a private key is given, else client_secret_basic. */
  clientAuthMethod: clientAuthMethodSchema.optional(),
  ...secretFields,
  /** Scopes asked for when a request names none. */
  defaultScopes: scopesSchema.default([]),
  /** Extra parameters of client-credentials requests, e.g. `audience` (Auth0) or `resource` (RFC 8707). */
  tokenParameters: tokenParametersSchema.default({}),
  allowedWorkloads: allowedWorkloadsSchema.default([]),
};

type OAuth2Input = {
  vendor: string;
  vendorParams: Record<string, string>;
  discoveryUrl?: string | undefined;
  metadata?: unknown;
  clientAuthMethod?: string | undefined;
  clientSecret?: string | undefined;
  clientPrivateJwk?: unknown;
};

export type ClientAuthMethod = z.output<typeof clientAuthMethodSchema>;

/** The client authentication a provider uses when none is named: a lone private key means private_key_jwt. */
export function effectiveClientAuthMethod(provider: { clientAuthMethod?: string | undefined; clientSecret?: unknown; clientPrivateJwk?: unknown }): ClientAuthMethod {
  if (provider.clientAuthMethod) return provider.clientAuthMethod as ClientAuthMethod;
  return provider.clientPrivateJwk && !provider.clientSecret ? 'private_key_jwt' : 'client_secret_basic';
}

const DISCOVERY_SUFFIXES = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'];

/** Cross-field rules of an OAuth2 provider, shared by create and (on the merged result) update. */
export function oauth2ProviderProblems(provider: OAuth2Input): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  if (provider.vendor === 'custom') {
    if (!provider.discoveryUrl === !provider.metadata) problems.push({ path: 'discoveryUrl', message: 'a custom provider needs exactly one of discoveryUrl or metadata' });
    if (provider.discoveryUrl && !DISCOVERY_SUFFIXES.some((suffix) => new URL(provider.discoveryUrl!).pathname.endsWith(suffix))) {
      problems.push({ path: 'discoveryUrl', message: `must end in ${DISCOVERY_SUFFIXES.join(' or ')}` });
    }
  } else {
    if (provider.discoveryUrl || provider.metadata) problems.push({ path: 'vendor', message: 'a preset brings its own endpoints; use vendor "custom" for discovery or metadata' });
    const preset = PROVIDER_PRESETS[provider.vendor as keyof typeof PROVIDER_PRESETS];
    for (const param of preset?.params ?? []) {
      const value = provider.vendorParams[param];
      if (!value || !PRESET_PARAM_PATTERNS[param]?.test(value)) problems.push({ path: `vendorParams.${param}`, message: `${provider.vendor} needs a valid ${param}` });
    }
  }
  const method = effectiveClientAuthMethod(provider);
  if (method === 'private_key_jwt' ? !provider.clientPrivateJwk : !provider.clientSecret) {
    problems.push({ path: method === 'private_key_jwt' ? 'clientPrivateJwk' : 'clientSecret', message: `required for ${method}` });
  }
  return problems;
}

const providerRef = { tenant: tenantIdSchema, name: providerNameSchema };

const oauth2CreateSchema = z
  .strictObject({ kind: z.literal('oauth2'), ...providerRef, actor, ...oauth2Fields })
  .superRefine((provider, ctx) => {
    for (const problem of oauth2ProviderProblems(provider)) ctx.addIssue({ code: 'custom', path: problem.path.split('.'), message: problem.message });
  });

const apiKeyCreateSchema = z.strictObject({
  kind: z.literal('api-key'),
  ...providerRef,
  actor,
  description: z.string().max(4096).default(''),
  /** Sealed at rest; released only to allowed workloads through `api-key`. */
  apiKey: z.string().min(1).max(64 * 1024),
  allowedWorkloads: allowedWorkloadsSchema.default([]),
});

/** A provider as reads show it: metadata only, never a secret. */
export const providerViewSchema = z.object({
  tenant: tenantIdSchema,
  name: providerNameSchema,
  kind: z.enum(['oauth2', 'api-key']),
  description: z.string(),
  vendor: z.string().optional(),
  vendorParams: z.record(z.string(), z.string()).optional(),
  discoveryUrl: z.string().optional(),
  metadata: authorizationServerMetadataSchema.optional(),
  clientId: z.string().optional(),
  clientAuthMethod: clientAuthMethodSchema.optional(),
  defaultScopes: z.array(z.string()).optional(),
  tokenParameters: z.record(z.string(), z.string()).optional(),
  allowedWorkloads: z.array(z.string()),
  /** Which secrets are set, without them. */
  secrets: z.array(z.enum(['clientSecret', 'clientPrivateJwk', 'apiKey'])),
  revision: z.number().int(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type ProviderView = z.output<typeof providerViewSchema>;

const endpoint = endpointsOf(VAULT_SERVICE);

export const providerCreateEndpoint = endpoint(
  'provider-create',
  'Registers an OAuth2 or API key credential provider; its secret is sealed and never returned.',
  z.discriminatedUnion('kind', [oauth2CreateSchema, apiKeyCreateSchema]),
  providerViewSchema,
);

export const providerGetEndpoint = endpoint('provider-get', "Reads a provider's metadata (never its secret).", z.strictObject(providerRef), providerViewSchema);

export const providerListEndpoint = endpoint('provider-list', 'Lists the providers of a tenant, one page at a time.', tenantPageRequest, pageOf(providerViewSchema));

const changedFields = z
  .strictObject({
    description: z.string().max(4096).optional(),
    vendorParams: vendorParamsSchema.optional(),
    discoveryUrl: endpointUrlSchema.optional(),
    metadata: authorizationServerMetadataSchema.optional(),
    clientId: oauth2Fields.clientId.optional(),
    clientAuthMethod: clientAuthMethodSchema.optional(),
    ...secretFields,
    apiKey: apiKeyCreateSchema.shape.apiKey.optional(),
    defaultScopes: scopesSchema.optional(),
    tokenParameters: tokenParametersSchema.optional(),
    allowedWorkloads: allowedWorkloadsSchema.optional(),
  })
  .refine((set) => Object.keys(set).length > 0, 'name at least one field to change');
const revisionAndActor = { expectedRevision: expectedRevisionSchema, actor };

export const providerUpdateEndpoint = endpoint(
  'provider-update',
  'Replaces the given fields (a new secret rotates it); with expectedRevision, only if unchanged since.',
  z.strictObject({ ...providerRef, set: changedFields, ...revisionAndActor }),
  providerViewSchema,
);

export const providerDeleteEndpoint = endpoint('provider-delete', 'Deletes a provider and its cached machine tokens.', z.strictObject({ ...providerRef, ...revisionAndActor }), deletedSchema);

export const tokenFlowSchema = z.enum(['M2M', 'USER_FEDERATION']);

const wat = z.string().min(1).max(16 * 1024);

export const oauth2TokenEndpoint = endpoint(
  'oauth2-token',
  'An access token for the provider: M2M (client credentials, cached) or USER_FEDERATION (the user\'s stored token, refreshed once however many ask; consent_required with a session when there is none).',
  z.strictObject({
    tenant: tenantIdSchema,
    workloadToken: wat,
    provider: providerNameSchema,
    scopes: scopesSchema.default([]),
    flow: tokenFlowSchema,
    /** Asking again after consent: report on this session instead of opening another. */
    sessionId: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/).optional(),
    /** Where the consent flow sends the person back; must be on the workload's allow-list. */
    returnUrl: z.string().max(2048).optional(),
    customState: z.string().max(1024).optional(),
    customParameters: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), z.string().max(1024)).optional(),
    /** Ignore a stored token and ask the person again. */
    forceAuthentication: z.boolean().default(false),
  }),
  z.object({ accessToken: z.string(), tokenType: z.string(), expiresAt: z.iso.datetime().optional(), scopes: z.array(z.string()) }),
);

export const apiKeyEndpoint = endpoint(
  'api-key',
  'The API key of a provider, for a workload allowed to use it.',
  z.strictObject({ tenant: tenantIdSchema, workloadToken: wat, provider: providerNameSchema }),
  z.object({ apiKey: z.string() }),
);

export const tokenRevokeEndpoint = endpoint(
  'token-revoke',
  "Deletes a user's tokens for a provider and revokes them at the provider (RFC 7009) where it can.",
  z.strictObject({ tenant: tenantIdSchema, provider: providerNameSchema, user: userRefSchema, actor }),
  z.object({ deleted: z.number().int().min(0), upstream: z.enum(['revoked', 'not_supported', 'failed', 'nothing_to_revoke']) }),
);

export const vaultEndpoints = [
  providerCreateEndpoint,
  providerGetEndpoint,
  providerListEndpoint,
  providerUpdateEndpoint,
  providerDeleteEndpoint,
  oauth2TokenEndpoint,
  apiKeyEndpoint,
  tokenRevokeEndpoint,
] as const;

export const providerChangedEvent = defineEvent({
  service: VAULT_SERVICE,
  name: 'provider-changed',
  description: 'A provider was changed or deleted: every vault replica drops what it cached of it.',
  data: z.object({ name: providerNameSchema, change: z.enum(['updated', 'deleted']) }),
});

export const consentNeededEvent = defineEvent({
  service: VAULT_SERVICE,
  name: 'consent-needed',
  description: "The provider refused a user's refresh token: the person must consent again.",
  data: z.object({ provider: providerNameSchema, user: userRefSchema, scopes: z.array(z.string()) }),
});

export const vaultAudit = defineAuditActions(VAULT_SERVICE, [
  'provider-create',
  'provider-update',
  'provider-delete',
  'token-release',
  'api-key-release',
  'user-tokens-store',
  'token-refresh',
  'token-revoke',
  'code-exchange',
  'consent-session-fail',
  'consent-session-complete',
  'consent-grant',
  'grant-revoke',
]);
