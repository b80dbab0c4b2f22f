import { isDeepStrictEqual } from 'node:util';
import type { BusClient } from '@mandate/bus/client';
import {
  authorizerSetEndpoint,
  gatewayCreateEndpoint,
  gatewayGetEndpoint,
  isMandateError,
  providerCreateEndpoint,
  providerGetEndpoint,
  providerUpdateEndpoint,
  targetAddEndpoint,
  workloadCreateEndpoint,
  workloadGetEndpoint,
  workloadUpdateEndpoint,
  type AuthorizerConfig,
  type RequestOf,
  type TargetSpec,
} from '@mandate/contracts';
import { RESOURCE_AUDIENCES, RESOURCE_SCOPES, sampleApiDocument, type ResourceServerName } from '@mandate/demo';
import type { WorkloadKey } from './demo-files.js';
import { AGENT, DEMO_API_KEY, GATEWAY, GATEWAY_WORKLOAD, MANDATE_CLIENT, REPORT_AGENT, SALES_APP, SAMPLE_SCOPES, type DemoPlan, type DemoWorkload } from './demo-plan.js';

/*
 * The demo's records, registered so that running it again reuses them: a create that answers
 * `conflict` keeps what is there, and only what the demo needs and finds missing or pointing
 * elsewhere (its key, its authorizer config, a provider's endpoint or allowed workloads) is
 * changed. Nothing is deleted, now or when the demo stops.
 */

export type Outcome = 'created' | 'kept' | 'updated';

/** One line of what the demo found or did. */
export interface Registration {
  kind: 'workload' | 'provider' | 'gateway' | 'target';
  name: string;
  outcome: Outcome;
}

/** `create()` as it is, or undefined when the name is taken (a conflict); any other error as it is. */
async function createUnlessTaken<T>(create: () => Promise<T>): Promise<T | undefined> {
  try {
    return await create();
  } catch (error) {
    if (isMandateError(error) && error.code === 'conflict') return undefined;
    throw error;
  }
}

interface Context {
  bus: BusClient;
  plan: DemoPlan;
  keys: Record<DemoWorkload, WorkloadKey>;
  actor: string;
}

/** An authorizer config as the directory stores it, every list present, so that equal configs compare equal. */
function authorizerConfig(config: Pick<AuthorizerConfig, 'discoveryUrl' | 'allowedAudiences'> & Partial<AuthorizerConfig>): AuthorizerConfig {
  return { allowedClients: [], allowedScopes: [], requiredClaims: [], ...config };
}

async function ensureWorkload(context: Context, name: DemoWorkload, description: string, authorizer?: AuthorizerConfig): Promise<Outcome> {
  const { bus, plan, actor } = context;
  const key = context.keys[name].publicJwk;
  const tenant = plan.tenant;
  const created = await createUnlessTaken(() =>
    bus.request(workloadCreateEndpoint, { tenant, name, description, publicKeys: { keys: [key] }, tags: { demo: 'true' }, ...(authorizer ? { authorizer } : {}), actor }),
  );
  if (created) return 'created';
  const existing = await bus.request(workloadGetEndpoint, { tenant, name });
  let outcome: Outcome = 'kept';
  // A demo directory made afresh has new keys: the workload accepts those too (keeping at most 10).
  if (!existing.publicKeys.keys.some((registered) => registered.kid === key.kid)) {
    await bus.request(workloadUpdateEndpoint, { tenant, name, set: { publicKeys: { keys: [...existing.publicKeys.keys.slice(-9), key] } }, actor });
    outcome = 'updated';
  }
  if (authorizer && !isDeepStrictEqual(existing.authorizer, authorizer)) {
    await bus.request(authorizerSetEndpoint, { tenant, name, authorizer, actor });
    outcome = 'updated';
  }
  return outcome;
}

type ProviderCreate = RequestOf<typeof providerCreateEndpoint>;

async function ensureProvider(context: Context, provider: ProviderCreate): Promise<Outcome> {
  const { bus, plan, actor } = context;
  const created = await createUnlessTaken(() => bus.request(providerCreateEndpoint, { ...provider, actor }));
  if (created) return 'created';
  const existing = await bus.request(providerGetEndpoint, { tenant: plan.tenant, name: provider.name });
  const wanted = provider.allowedWorkloads ?? [];
  const allowedWorkloads = [...new Set([...existing.allowedWorkloads, ...wanted])];
  // The demo authorization server on another port than last time (--auth-server-port): follow it.
  const discoveryUrl = provider.kind === 'oauth2' && provider.discoveryUrl !== existing.discoveryUrl ? provider.discoveryUrl : undefined;
  if (allowedWorkloads.length === existing.allowedWorkloads.length && !discoveryUrl) return 'kept';
  await bus.request(providerUpdateEndpoint, { tenant: plan.tenant, name: provider.name, set: { allowedWorkloads, ...(discoveryUrl ? { discoveryUrl } : {}) }, actor });
  return 'updated';
}

function sampleApiProvider(plan: DemoPlan, api: ResourceServerName, allowedWorkloads: string[]): ProviderCreate {
  return {
    kind: 'oauth2',
    tenant: plan.tenant,
    name: api,
    description: `The sample ${api} API (mandate demo)`,
    vendor: 'custom',
    discoveryUrl: `${plan.authServerUrl}/.well-known/openid-configuration`,
    clientId: MANDATE_CLIENT.clientId,
    clientSecret: MANDATE_CLIENT.clientSecret,
    // Client-credentials tokens for this API, not for whatever the scopes would pick.
    tokenParameters: { resource: RESOURCE_AUDIENCES[api] },
    allowedWorkloads,
  };
}

/** The gateway's targets: the three sample APIs from their OpenAPI documents, each with its credential from the vault. */
function sampleApiTargets(plan: DemoPlan): TargetSpec[] {
  const target = (api: ResourceServerName, credential: TargetSpec['credential'], defaultScopes: string[], bindings: TargetSpec['bindings'] = []): TargetSpec => ({
    name: api,
    source: { kind: 'openapi', document: sampleApiDocument(api, plan.apiUrls[api]) },
    credential,
    defaultScopes,
    bindings,
    timeoutMs: 10_000,
  });
  return [
    // The person's own CRM notes: their token, after their consent.
    target('crm', { kind: 'oauth2-user', provider: 'crm', scopes: [RESOURCE_SCOPES.crmNotesRead], customParameters: { resource: RESOURCE_AUDIENCES.crm } }, [RESOURCE_SCOPES.crmNotesRead]),
    // Finance figures with the gateway's own M2M token.
    target('finance', { kind: 'oauth2-m2m', provider: 'finance', scopes: [RESOURCE_SCOPES.financeSpendRead] }, [RESOURCE_SCOPES.financeSpendRead]),
    target(
      'documents',
      { kind: 'oauth2-user', provider: 'documents', scopes: [RESOURCE_SCOPES.docsRead, RESOURCE_SCOPES.docsWrite], customParameters: { resource: RESOURCE_AUDIENCES.documents } },
      [RESOURCE_SCOPES.docsRead],
      [{ tool: 'putDocument', requiredScopes: [RESOURCE_SCOPES.docsWrite], hidden: false }],
    ),
  ];
}

/** Registers (or finds) everything the printed commands use: what it found or did, and the gateway's resource URL. */
export async function registerDemo(context: Context): Promise<{ gatewayUrl: string; registered: Registration[] }> {
  const { bus, plan, keys, actor } = context;
  const registered: Registration[] = [];
  const tenant = plan.tenant;
  const idpDiscovery = `${plan.idpUrl}/.well-known/openid-configuration`;

  const workload = (name: DemoWorkload, outcome: Outcome) => registered.push({ kind: 'workload', name, outcome });
  const agentAuthorizer = authorizerConfig({
    discoveryUrl: idpDiscovery,
    allowedAudiences: [SALES_APP.audience],
    // Only people in sales may invoke it: sarah is, bob is not.
    requiredClaims: [{ claim: 'department', valueType: 'string', operator: 'equals', value: 'sales' }],
  });
  workload(AGENT, await ensureWorkload(context, AGENT, 'Prepares account briefs from your CRM notes and finance figures (mandate demo)', agentAuthorizer));
  workload(REPORT_AGENT, await ensureWorkload(context, REPORT_AGENT, 'Background reports, on a schedule (mandate demo)'));
  const gatewayDescription = 'The sales tool gateway (mandate demo)';
  // Its authorizer config names the gateway's resource URL, which the gateway service says once the gateway exists.
  const gatewayWorkload = await ensureWorkload(context, GATEWAY_WORKLOAD, gatewayDescription);

  const providers: ProviderCreate[] = [
    sampleApiProvider(plan, 'crm', [AGENT, GATEWAY_WORKLOAD]),
    sampleApiProvider(plan, 'finance', [AGENT, REPORT_AGENT, GATEWAY_WORKLOAD]),
    sampleApiProvider(plan, 'documents', [AGENT, GATEWAY_WORKLOAD]),
    { kind: 'api-key', tenant, name: 'weather', description: 'A weather API key (mandate demo; not a real key)', apiKey: DEMO_API_KEY, allowedWorkloads: [REPORT_AGENT] },
  ];
  for (const provider of providers) registered.push({ kind: 'provider', name: provider.name, outcome: await ensureProvider(context, provider) });

  const gatewayKey = keys[GATEWAY_WORKLOAD].privateJwk as RequestOf<typeof gatewayCreateEndpoint>['workload']['privateJwk'];
  const createdGateway = await createUnlessTaken(() =>
    bus.request(gatewayCreateEndpoint, {
      tenant,
      name: GATEWAY,
      description: 'The sample CRM, finance and documents APIs as MCP tools (mandate demo)',
      workload: { name: GATEWAY_WORKLOAD, privateJwk: gatewayKey },
      authorizationServers: [plan.idpUrl],
      scopesSupported: SAMPLE_SCOPES,
      actor,
    }),
  );
  const gateway = createdGateway ?? (await bus.request(gatewayGetEndpoint, { tenant, name: GATEWAY }));
  registered.push({ kind: 'gateway', name: GATEWAY, outcome: createdGateway ? 'created' : 'kept' });
  // Which people's tokens the gateway accepts: the demo IdP's, for its resource URL, with a sample API scope.
  const gatewayAuthorizer = authorizerConfig({ discoveryUrl: idpDiscovery, allowedAudiences: [gateway.resourceUrl], allowedScopes: SAMPLE_SCOPES });
  const authorizerOutcome = await ensureWorkload(context, GATEWAY_WORKLOAD, gatewayDescription, gatewayAuthorizer);
  workload(GATEWAY_WORKLOAD, gatewayWorkload === 'created' ? 'created' : gatewayWorkload === 'updated' || authorizerOutcome === 'updated' ? 'updated' : 'kept');

  for (const target of sampleApiTargets(plan)) {
    const added = await createUnlessTaken(() => bus.request(targetAddEndpoint, { tenant, gateway: GATEWAY, target, actor }, { timeoutMs: 45_000 }));
    registered.push({ kind: 'target', name: `${GATEWAY}/${target.name}`, outcome: added ? 'created' : 'kept' });
  }
  return { gatewayUrl: gateway.resourceUrl, registered };
}
