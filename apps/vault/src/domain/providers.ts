import type { JWK } from 'jose';
import {
  effectiveClientAuthMethod,
  MandateError,
  oauth2ProviderProblems,
  PROVIDER_CHANGED_EVENT,
  VAULT_SERVICE,
  type AuditRecordInput,
  type ParsedRequestOf,
  type ProviderView,
  type TenantId,
  type providerCreateEndpoint,
  type providerUpdateEndpoint,
} from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import { encodeKeySegment, type DocumentCollection, type StoredDocument } from '@mandate/store';
import type { ProviderDocument } from '../store/vault-records.js';
import type { ClientSecrets } from './oauth-client.js';

export interface AuditSink {
  audit(record: Omit<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'>): Promise<unknown>;
}

export interface EventSink {
  event(service: string, name: string, tenant: string, data: unknown): Promise<unknown>;
}

type SecretName = keyof ProviderDocument['sealed'];
type CreateRequest = ParsedRequestOf<typeof providerCreateEndpoint>;
type UpdateRequest = ParsedRequestOf<typeof providerUpdateEndpoint>;

/**
 * Credential providers of every tenant. Secrets are sealed on the way in (one data key each,
 * bound to tenant, provider and field) and never leave again except to the code that uses them.
 */
export class ProviderRegistry {
  /** Providers read recently; a change here evicts at once, a change on another replica within `cacheTtlMs`. */
  readonly #cache = new Map<string, { stored: StoredDocument<ProviderDocument>; at: number }>();
  /** Opened secrets by provider revision: a hit costs no decryption; a changed provider has a new revision. */
  readonly #opened = new Map<string, string>();

  constructor(
    private readonly providers: DocumentCollection<ProviderDocument>,
    private readonly cipher: EnvelopeCipher,
    private readonly audit: AuditSink & EventSink,
    private readonly now: () => Date = () => new Date(),
    private readonly cacheTtlMs = 2_000,
  ) {}

  /** Forgets what this replica cached of a provider (another replica changed it). */
  evict(tenant: string, name: string): void {
    this.#cache.delete(`${tenant}\n${name}`);
  }

  async create(request: CreateRequest): Promise<ProviderView> {
    const at = this.now().toISOString();
    const seal = (field: SecretName, value: string | undefined) => (value === undefined ? {} : { [field]: this.#seal(request.tenant, request.name, field, value) });
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
    const stored = await this.providers.create(request.tenant, idOf(request.name), document).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? new MandateError('conflict', `a provider named ${request.name} already exists in this tenant`) : error;
    });
    await this.#audit(request.tenant, 'provider-create', request.name, request.actor);
    return toView(request.tenant, stored);
  }

  async get(tenant: TenantId, name: string): Promise<StoredDocument<ProviderDocument>> {
    const key = `${tenant}\n${name}`;
    const now = this.now().getTime();
    const cached = this.#cache.get(key);
    if (cached && now - cached.at < this.cacheTtlMs) return cached.stored;
    const stored = await this.providers.get(tenant, idOf(name));
    if (!stored) {
      this.#cache.delete(key);
      throw new MandateError('not_found', `no provider named ${name} in this tenant`);
    }
    if (this.cacheTtlMs > 0) this.#cache.set(key, { stored, at: now });
    return stored;
  }

  /** Reads around the cache: for changes, which must see the latest revision. */
  async #fresh(tenant: TenantId, name: string): Promise<StoredDocument<ProviderDocument>> {
    this.#cache.delete(`${tenant}\n${name}`);
    return this.get(tenant, name);
  }

  async view(tenant: TenantId, name: string): Promise<ProviderView> {
    return toView(tenant, await this.#fresh(tenant, name));
  }

  async list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: ProviderView[]; nextCursor?: string }> {
    const page = await this.providers.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
    return { items: page.items.map((item) => toView(tenant, item)), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async update(request: UpdateRequest): Promise<ProviderView> {
    const current = await this.#fresh(request.tenant, request.name);
    if (request.expectedRevision !== undefined && current.revision !== request.expectedRevision) throw conflict(request.name);
    const { set } = request;
    const doc = current.value;
    const oauthOnly = ['vendorParams', 'discoveryUrl', 'metadata', 'clientId', 'clientAuthMethod', 'clientSecret', 'clientPrivateJwk', 'defaultScopes', 'tokenParameters'] as const;
    const wrongKind = doc.kind === 'api-key' ? oauthOnly.find((field) => set[field] !== undefined) : set.apiKey !== undefined ? 'apiKey' : undefined;
    if (wrongKind) {
      throw new MandateError('invalid_request', 'invalid request', { issues: [{ path: `set.${wrongKind}`, message: `not a field of ${doc.kind === 'api-key' ? 'an API key' : 'an OAuth2'} provider` }] });
    }
    const sealed = { ...doc.sealed };
    if (set.clientSecret !== undefined) sealed.clientSecret = this.#seal(request.tenant, request.name, 'clientSecret', set.clientSecret);
    if (set.clientPrivateJwk !== undefined) sealed.clientPrivateJwk = this.#seal(request.tenant, request.name, 'clientPrivateJwk', JSON.stringify(set.clientPrivateJwk));
    if (set.apiKey !== undefined) sealed.apiKey = this.#seal(request.tenant, request.name, 'apiKey', set.apiKey);
    const { clientSecret: _s, clientPrivateJwk: _k, apiKey: _a, ...plain } = set;
    const next: ProviderDocument = { ...doc, ...plain, sealed, updatedAt: this.now().toISOString() };
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
    const stored = await this.providers.update(request.tenant, idOf(request.name), next, current.revision).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? conflict(request.name) : error;
    });
    this.#cache.delete(`${request.tenant}\n${request.name}`);
    await this.#audit(request.tenant, 'provider-update', request.name, request.actor, Object.keys(set));
    await this.audit.event(VAULT_SERVICE, PROVIDER_CHANGED_EVENT, request.tenant, { name: request.name, change: 'updated' });
    return toView(request.tenant, stored);
  }

  async delete(tenant: TenantId, name: string, expectedRevision: number | undefined, actor: string | undefined): Promise<void> {
    const current = await this.#fresh(tenant, name);
    if (expectedRevision !== undefined && current.revision !== expectedRevision) throw conflict(name);
    if (!(await this.providers.delete(tenant, idOf(name), { expectedRevision: current.revision }))) throw conflict(name);
    this.#cache.delete(`${tenant}\n${name}`);
    await this.#audit(tenant, 'provider-delete', name, actor);
    await this.audit.event(VAULT_SERVICE, PROVIDER_CHANGED_EVENT, tenant, { name, change: 'deleted' });
  }

  /** The client secrets of an OAuth2 provider, opened for one call. */
  clientSecrets(tenant: TenantId, provider: ProviderDocument): ClientSecrets {
    const secrets: ClientSecrets = {};
    if (provider.sealed.clientSecret) secrets.clientSecret = this.#open(tenant, provider.name, 'clientSecret', provider.sealed.clientSecret);
    if (provider.sealed.clientPrivateJwk) secrets.clientPrivateJwk = JSON.parse(this.#open(tenant, provider.name, 'clientPrivateJwk', provider.sealed.clientPrivateJwk)) as JWK;
    return secrets;
  }

  apiKey(tenant: TenantId, provider: ProviderDocument): string {
    if (!provider.sealed.apiKey) throw new MandateError('invalid_request', `${provider.name} is not an API key provider`);
    return this.#open(tenant, provider.name, 'apiKey', provider.sealed.apiKey);
  }

  #seal(tenant: TenantId, provider: string, field: SecretName, value: string): string {
    return this.cipher.sealToString(value, recordId(tenant, provider, field));
  }

  /** Fails closed: a sealed value that does not open (tampered, moved, unknown key) is an internal error. */
  #open(tenant: TenantId, provider: string, field: SecretName, sealed: string): string {
    const key = `${recordId(tenant, provider, field)}\n${sealed}`;
    const opened = this.#opened.get(key);
    if (opened !== undefined) return opened;
    try {
      const plaintext = this.cipher.openString(sealed, recordId(tenant, provider, field)).toString('utf8');
      if (this.#opened.size >= 10_000) this.#opened.clear();
      this.#opened.set(key, plaintext);
      return plaintext;
    } catch (cause) {
      throw new MandateError('internal', `a stored secret of provider ${provider} cannot be opened`, { cause });
    }
  }

  #audit(tenant: TenantId, action: string, provider: string, actor: string | undefined, fields?: string[]) {
    return this.audit.audit({
      tenant,
      service: VAULT_SERVICE,
      action,
      outcome: 'succeeded',
      actor: { admin: actor ?? 'admin-api' },
      target: { provider },
      ...(fields ? { details: { fields } } : {}),
    });
  }
}

export function idOf(name: string): string {
  return encodeKeySegment(name);
}

function recordId(tenant: TenantId, provider: string, field: SecretName): string {
  return `${tenant}/providers/${provider}/${field}`;
}

function toView(tenant: TenantId, stored: StoredDocument<ProviderDocument>): ProviderView {
  const { sealed, ...doc } = stored.value;
  return { tenant, ...doc, secrets: (Object.keys(sealed) as SecretName[]).filter((k) => sealed[k]), revision: stored.revision };
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof MandateError && error.code === code;
}

function conflict(name: string): MandateError {
  return new MandateError('conflict', `provider ${name} was changed by someone else; read it again and retry`);
}
