import {
  effectiveClientAuthMethod,
  MandateError,
  oauth2ProviderProblems,
  providerChangedEvent,
  type AuditSink,
  type EventSink,
  type ParsedRequestOf,
  type ProviderView,
  type TenantId,
  type providerCreateEndpoint,
  type providerUpdateEndpoint,
  type vaultAudit,
  type AuditActionOf,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { ProviderRepository } from '../store/repositories.js';
import type { ProviderDocument } from '../store/vault-records.js';
import type { GrantLedger } from './grants.js';
import type { MachineTokens } from './machine-tokens.js';
import type { ProviderRegistry, SecretName } from './providers.js';
import type { TokenRevocation } from './token-revocation.js';

type CreateRequest = ParsedRequestOf<typeof providerCreateEndpoint>;
type UpdateRequest = ParsedRequestOf<typeof providerUpdateEndpoint>;

export interface ProviderAdministrationParts {
  repository: ProviderRepository;
  registry: ProviderRegistry;
  machineTokens: MachineTokens;
  grants: GrantLedger;
  revocation: TokenRevocation;
  audit: AuditSink<AuditActionOf<typeof vaultAudit>>;
  events: EventSink;
  now?: () => Date;
}

/**
 * Creating, reading, changing and deleting credential providers. Secrets are sealed on the way
 * in (one data key each, bound to tenant, provider and field) and never shown again. What was
 * fetched with a provider goes with it: cached tokens when it changes; users' tokens (revoked
 * upstream where possible) and grants when it is deleted, so a new one of the same name starts
 * from nothing.
 */
export class ProviderAdministration {
  readonly #now: () => Date;

  constructor(private readonly parts: ProviderAdministrationParts) {
    this.#now = parts.now ?? (() => new Date());
  }

  async create(request: CreateRequest): Promise<ProviderView> {
    const at = this.#now().toISOString();
    const seal = (field: SecretName, value: string | undefined) => (value === undefined ? {} : { [field]: this.parts.registry.seal(request.tenant, request.name, field, value) });
    const document: ProviderDocument =
      request.kind === 'api-key'
        ? { name: request.name, kind: 'api-key', description: request.description, allowedWorkloads: request.allowedWorkloads, sealed: seal('apiKey', request.apiKey), createdAt: at, updatedAt: at }
        : {
            name: request.name,
            kind: 'oauth2',
            description: request.description,
            vendor: request.vendor,
            vendorParams: request.vendorParams,
            ...(request.discoveryUrl ? { discoveryUrl: request.discoveryUrl } : {}),
            ...(request.metadata ? { metadata: request.metadata } : {}),
            clientId: request.clientId,
            clientAuthMethod: effectiveClientAuthMethod(request),
            defaultScopes: request.defaultScopes,
            tokenParameters: request.tokenParameters,
            allowedWorkloads: request.allowedWorkloads,
            sealed: {
              ...seal('clientSecret', request.clientSecret),
              ...seal('clientPrivateJwk', request.clientPrivateJwk ? JSON.stringify(request.clientPrivateJwk) : undefined),
            },
            createdAt: at,
            updatedAt: at,
          };
    const stored = await this.parts.repository.create(request.tenant, document).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? new MandateError('conflict', `a provider named ${request.name} already exists in this tenant`) : error;
    });
    await this.#audit(request.tenant, 'provider-create', request.name, request.actor);
    return toView(request.tenant, stored);
  }

  async get(tenant: TenantId, name: string): Promise<ProviderView> {
    return toView(tenant, await this.parts.registry.fresh(tenant, name));
  }

  async list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: ProviderView[]; nextCursor?: string }> {
    const page = await this.parts.repository.list(tenant, limit, cursor);
    return { items: page.items.filter((item) => !item.value.retiring).map((item) => toView(tenant, item)), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async update(request: UpdateRequest): Promise<ProviderView> {
    const { tenant, name, set } = request;
    const current = await this.parts.registry.fresh(tenant, name);
    if (request.expectedRevision !== undefined && current.revision !== request.expectedRevision) throw conflict(name);
    const doc = current.value;
    const oauthOnly = ['vendorParams', 'discoveryUrl', 'metadata', 'clientId', 'clientAuthMethod', 'clientSecret', 'clientPrivateJwk', 'defaultScopes', 'tokenParameters'] as const;
    const wrongKind = doc.kind === 'api-key' ? oauthOnly.find((field) => set[field] !== undefined) : set.apiKey !== undefined ? 'apiKey' : undefined;
    if (wrongKind) {
      throw new MandateError('invalid_request', 'invalid request', { issues: [{ path: `set.${wrongKind}`, message: `not a field of ${doc.kind === 'api-key' ? 'an API key' : 'an OAuth2'} provider` }] });
    }
    const sealed = { ...doc.sealed };
    if (set.clientSecret !== undefined) sealed.clientSecret = this.parts.registry.seal(tenant, name, 'clientSecret', set.clientSecret);
    if (set.clientPrivateJwk !== undefined) sealed.clientPrivateJwk = this.parts.registry.seal(tenant, name, 'clientPrivateJwk', JSON.stringify(set.clientPrivateJwk));
    if (set.apiKey !== undefined) sealed.apiKey = this.parts.registry.seal(tenant, name, 'apiKey', set.apiKey);
    const { clientSecret: _s, clientPrivateJwk: _k, apiKey: _a, ...plain } = set;
    const next: ProviderDocument = { ...doc, ...plain, sealed, updatedAt: this.#now().toISOString() };
    if (next.kind === 'oauth2') {
      const problems = oauth2ProviderProblems({
        vendor: next.vendor ?? 'custom',
        vendorParams: next.vendorParams ?? {},
        discoveryUrl: next.discoveryUrl,
        metadata: next.metadata,
        clientAuthMethod: next.clientAuthMethod ?? 'client_secret_basic',
        clientSecret: next.sealed.clientSecret,
        clientPrivateJwk: next.sealed.clientPrivateJwk,
      });
      if (problems.length > 0) throw new MandateError('invalid_request', 'invalid provider', { issues: problems.map((p) => ({ path: `set.${p.path}`, message: p.message })) });
    }
    const stored = await this.parts.repository.update(tenant, next, current.revision).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? conflict(name) : error;
    });
    this.parts.registry.evict(tenant, name);
    // New secrets or endpoints: tokens fetched with the old ones are not handed out again.
    await this.parts.machineTokens.forget(tenant, name);
    await this.#audit(tenant, 'provider-update', name, request.actor, Object.keys(set));
    await this.parts.events.publishEvent(providerChangedEvent, tenant, { name, change: 'updated' });
    return toView(tenant, stored);
  }

  /**
   * Marked retiring first (where the revision check is: nothing changes if it fails), so nothing
   * uses it any more; then its users' tokens and grants are retired, and only then is it deleted,
   * with its secrets: a delete that stops half-way is finished by the next.
   */
  async delete(tenant: TenantId, name: string, expectedRevision: number | undefined, actor: string | undefined): Promise<{ deleted: true }> {
    let current = await this.parts.repository.get(tenant, name);
    if (!current) throw new MandateError('not_found', `no provider named ${name} in this tenant`);
    if (expectedRevision !== undefined && current.revision !== expectedRevision) throw conflict(name);
    if (!current.value.retiring) {
      current = await this.parts.repository.update(tenant, { ...current.value, retiring: true }, current.revision).catch((error: unknown) => {
        throw isCode(error, 'conflict') ? conflict(name) : error;
      });
      this.parts.registry.evict(tenant, name);
      await this.parts.events.publishEvent(providerChangedEvent, tenant, { name, change: 'deleted' });
    }
    await this.#retire(tenant, current);
    if (!(await this.parts.repository.delete(tenant, name, current.revision))) throw conflict(name);
    await this.#audit(tenant, 'provider-delete', name, actor);
    return { deleted: true };
  }

  /** Its users' tokens revoked upstream (best effort) and deleted, its grants and cached tokens removed. */
  async #retire(tenant: TenantId, provider: StoredDocument<ProviderDocument>): Promise<void> {
    await this.parts.revocation.retire(tenant, provider);
    await this.parts.grants.removeForProvider(tenant, provider.value.name);
    await this.parts.machineTokens.forget(tenant, provider.value.name);
  }

  #audit(tenant: TenantId, action: 'provider-create' | 'provider-update' | 'provider-delete', provider: string, actor: string | undefined, fields?: string[]) {
    return this.parts.audit.audit({ tenant, action, outcome: 'succeeded', actor: { admin: actor ?? 'admin-api' }, target: { provider }, ...(fields ? { details: { fields } } : {}) });
  }
}

function toView(tenant: TenantId, stored: StoredDocument<ProviderDocument>): ProviderView {
  const { sealed, retiring: _retiring, ...doc } = stored.value;
  return { tenant, ...doc, secrets: (Object.keys(sealed) as SecretName[]).filter((k) => sealed[k]), revision: stored.revision };
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof MandateError && error.code === code;
}

function conflict(name: string): MandateError {
  return new MandateError('conflict', `provider ${name} was changed by someone else; read it again and retry`);
}
