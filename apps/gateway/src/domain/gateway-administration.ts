import type { JWK } from 'jose';
import {
  gatewayChangedEvent,
  MandateError,
  type AuditActionOf,
  type AuditSink,
  type EventSink,
  type gatewayAudit,
  type GatewayView,
  type gatewayCreateEndpoint,
  type gatewayListEndpoint,
  type ParsedRequestOf,
  type PolicyMisfit,
  type ResponseOf,
  type targetRemoveEndpoint,
  type TargetSpec,
  type TargetView,
  type TenantId,
  type toolsForEndpoint,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { GatewayDocument, GatewayRecords, TargetDocument } from '../store/repositories.js';
import { toolNameClashes } from './tool-naming.js';
import { reservedNamesOf, ToolNameReservations } from './tool-name-reservations.js';
import { resourceUrlOf, type GatewayRegistry, type LoadedGateway } from './gateway-registry.js';
import type { InboundAuthentication } from './inbound-authentication.js';
import type { TargetCredentials } from './target-credentials.js';
import type { PolicyFit } from './policy-fit.js';
import { policyHiding } from './tool-listing.js';
import { UpstreamFailure, type Discovery, type UpstreamTools } from './upstream.js';

type GatewayAction = AuditActionOf<typeof gatewayAudit>;

/** Automatic syncs' refusals remembered at most (one per target refused at the moment). */
const MAX_REMEMBERED_REFUSALS = 10_000;

/** A sync the gateway refused (the target answered with tools it cannot take), as opposed to one that failed. */
function isRefusal(error: unknown): error is MandateError {
  return error instanceof MandateError && (error.code === 'conflict' || error.code === 'invalid_request');
}

export interface GatewayAdministrationPorts {
  records: GatewayRecords;
  registry: GatewayRegistry;
  credentials: TargetCredentials;
  upstream: UpstreamTools;
  inbound: InboundAuthentication;
  audit: AuditSink<GatewayAction>;
  events: EventSink;
  /** Refuses a key the authorizer does not accept for the workload (it mints a WAT with it). */
  checkKey(tenant: TenantId, workload: string, privateJwk: JWK): Promise<void>;
  sealKey(tenant: TenantId, gateway: string, privateJwk: JWK): string;
  /** Tells whether the attached policy set still validates once the tools changed (absent: not asked). */
  policyFit?: PolicyFit;
  mcpBaseUrl: string;
  now?: () => number;
}

/**
 * Gateways and their targets: created, listed, deleted; a target's tools discovered when it is
 * added and at every sync. Every change is audited and announced (`gateway-changed`), so each
 * replica reads the gateway again.
 */
export class GatewayAdministration {
  readonly #now: () => number;
  readonly #names: ToolNameReservations;
  /** The last refusal an automatic sync (the retry, a `tools/list_changed`) met, by target: audited once, not every time. */
  readonly #lastRefusal = new Map<string, string>();

  constructor(private readonly ports: GatewayAdministrationPorts) {
    this.#now = ports.now ?? Date.now;
    this.#names = new ToolNameReservations(ports.records, this.#now);
  }

  async create(request: ParsedRequestOf<typeof gatewayCreateEndpoint>): Promise<GatewayView> {
    const { tenant, name } = request;
    if (await this.ports.records.gateway(tenant, name)) throw new MandateError('conflict', `gateway ${name} already exists`);
    await this.ports.checkKey(tenant, request.workload.name, request.workload.privateJwk as JWK);
    const document: GatewayDocument = {
      name,
      description: request.description,
      workload: request.workload.name,
      sealedKey: this.ports.sealKey(tenant, name, request.workload.privateJwk as JWK),
      authorizationServers: request.authorizationServers,
      scopesSupported: request.scopesSupported,
      interceptors: request.interceptors,
      createdAt: new Date(this.#now()).toISOString(),
    };
    const stored = await this.ports.records.createGateway(tenant, document);
    await this.#changed(tenant, name, 'gateway-create', request.actor);
    return this.#view(tenant, stored, []);
  }

  async get(tenant: TenantId, name: string): Promise<GatewayView> {
    const stored = await this.#gateway(tenant, name);
    return this.#view(tenant, stored, await this.ports.records.targetsOf(tenant, name));
  }

  async list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<ResponseOf<typeof gatewayListEndpoint>> {
    const page = await this.ports.records.listGateways(tenant, limit, cursor);
    const items = await Promise.all(page.items.map(async (stored) => this.#view(tenant, stored, await this.ports.records.targetsOf(tenant, stored.value.name))));
    return { items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  /** Its targets first, so a delete that stops half-way leaves a gateway with fewer targets, never orphans. */
  async delete(tenant: TenantId, name: string, actor: string | undefined): Promise<{ deleted: true }> {
    await this.#gateway(tenant, name);
    for (const target of await this.ports.records.targetsOf(tenant, name)) {
      const holdings = await this.#names.holdings(tenant, name, target.value.name, reservedNamesOf(target.value, target.value.tools));
      await this.ports.records.deleteTarget(tenant, name, target.value.name);
      await this.#names.release(tenant, name, holdings);
    }
    await this.#names.releaseAllOf(tenant, name);
    await this.ports.records.deleteGateway(tenant, name);
    await this.#changed(tenant, name, 'gateway-delete', actor);
    return { deleted: true };
  }

  async addTarget(tenant: TenantId, gatewayName: string, spec: TargetSpec, actor: string | undefined): Promise<TargetView & { policyMisfit?: PolicyMisfit }> {
    const gateway = await this.#loaded(tenant, gatewayName);
    if (gateway.targets.has(spec.name) || (await this.ports.records.target(tenant, gatewayName, spec.name))) {
      throw new MandateError('conflict', `gateway ${gatewayName} already has a target ${spec.name}`);
    }
    const discovery = await this.#discover(gateway, spec);
    // Held before the target is written: of two targets added at once with a name in common, one gets it.
    const holdings = await this.#names.reserve(tenant, gatewayName, spec.name, reservedNamesOf(spec, discovery.tools));
    const now = new Date(this.#now()).toISOString();
    let stored: StoredDocument<TargetDocument>;
    try {
      stored = await this.ports.records.createTarget(tenant, { ...spec, gateway: gatewayName, ...discovery, syncedAt: now, addedAt: now });
    } catch (error) {
      // A target of this name added at the same moment holds these names now; anything else leaves them to nobody.
      if (!(error instanceof MandateError && error.code === 'conflict')) await this.#names.release(tenant, gatewayName, holdings);
      throw error;
    }
    const policyMisfit = await this.#policyMisfit(tenant, gatewayName);
    await this.#changed(tenant, gatewayName, 'target-add', actor, spec.name, 'succeeded', policyMisfit);
    return { ...targetView(stored), ...(policyMisfit ? { policyMisfit } : {}) };
  }

  async listTargets(tenant: TenantId, gatewayName: string): Promise<{ items: TargetView[] }> {
    await this.#gateway(tenant, gatewayName);
    return { items: (await this.ports.records.targetsOf(tenant, gatewayName)).map(targetView) };
  }

  async removeTarget(tenant: TenantId, gatewayName: string, target: string, actor: string | undefined): Promise<ResponseOf<typeof targetRemoveEndpoint>> {
    await this.#gateway(tenant, gatewayName);
    const stored = await this.ports.records.target(tenant, gatewayName, target);
    // Read before the delete, released after it at what was read: a target of this name added again meanwhile keeps what it renewed.
    const holdings = stored ? await this.#names.holdings(tenant, gatewayName, target, reservedNamesOf(stored.value, stored.value.tools)) : [];
    if (!stored || !(await this.ports.records.deleteTarget(tenant, gatewayName, target))) throw new MandateError('not_found', `gateway ${gatewayName} has no target ${target}`);
    await this.#names.release(tenant, gatewayName, holdings);
    const policyMisfit = await this.#policyMisfit(tenant, gatewayName);
    await this.#changed(tenant, gatewayName, 'target-remove', actor, target, 'succeeded', policyMisfit);
    return { removed: true, ...(policyMisfit ? { policyMisfit } : {}) };
  }

  /** Discovers the tools again (an administrator's sync: a refusal is audited every time); a target that cannot be reached keeps its tools but is left out of every list until a sync succeeds. */
  async syncTarget(tenant: TenantId, gatewayName: string, target: string, actor: string | undefined): Promise<TargetView & { policyMisfit?: PolicyMisfit }> {
    try {
      return await this.#sync(tenant, gatewayName, target, actor);
    } catch (error) {
      if (isRefusal(error)) await this.#syncRefused(tenant, gatewayName, target, actor, error);
      throw error;
    }
  }

  /**
   * The sync a target's `tools/list_changed` starts: a refusal is audited once (until it changes
   * or a sync succeeds), not at every announcement.
   */
  async syncAnnounced(tenant: TenantId, gatewayName: string, target: string, actor: string): Promise<TargetView & { policyMisfit?: PolicyMisfit }> {
    const key = `${tenant}/${gatewayName}/${target}`;
    try {
      const synced = await this.#sync(tenant, gatewayName, target, actor);
      this.#lastRefusal.delete(key);
      return synced;
    } catch (error) {
      if (isRefusal(error)) await this.#refusedOnce(key, tenant, gatewayName, target, actor, error);
      throw error;
    }
  }

  async #sync(tenant: TenantId, gatewayName: string, target: string, actor: string | undefined): Promise<TargetView & { policyMisfit?: PolicyMisfit }> {
    const gateway = await this.#loaded(tenant, gatewayName);
    const stored = await this.ports.records.target(tenant, gatewayName, target);
    if (!stored) throw new MandateError('not_found', `gateway ${gatewayName} has no target ${target}`);
    let discovery: Discovery;
    try {
      discovery = await this.#discover(gateway, stored.value);
    } catch (error) {
      if (error instanceof MandateError && error.code === 'unavailable' && !stored.value.unreachableSince) {
        await this.ports.records.updateTarget(tenant, { ...stored.value, unreachableSince: new Date(this.#now()).toISOString() }, stored.revision);
        await this.#changed(tenant, gatewayName, 'target-sync', actor, target, 'failed');
      }
      throw error;
    }
    // Names it shows from now on are reserved before it is written; those it stops showing are released after, at the revisions read before.
    const held = reservedNamesOf(stored.value, stored.value.tools);
    const names = reservedNamesOf(stored.value, discovery.tools);
    const holdings = await this.#names.reserve(tenant, gatewayName, target, names.filter((name) => !held.includes(name)));
    const dropping = await this.#names.holdings(tenant, gatewayName, target, held.filter((name) => !names.includes(name)));
    const { unreachableSince: _unreachable, openapi: _openapi, ...rest } = stored.value;
    let updated: StoredDocument<TargetDocument>;
    try {
      updated = await this.ports.records.updateTarget(tenant, { ...rest, ...discovery, syncedAt: new Date(this.#now()).toISOString() }, stored.revision);
    } catch (error) {
      // A sync of this target at the same moment won (and holds what it reserved); anything else leaves the new names to nobody.
      if (!(error instanceof MandateError && error.code === 'conflict')) await this.#names.release(tenant, gatewayName, holdings);
      throw error;
    }
    await this.#names.release(tenant, gatewayName, dropping);
    const policyMisfit = await this.#policyMisfit(tenant, gatewayName);
    await this.#changed(tenant, gatewayName, 'target-sync', actor, target, 'succeeded', policyMisfit);
    return { ...targetView(updated), ...(policyMisfit ? { policyMisfit } : {}) };
  }

  /**
   * A call could not reach the target: it is marked as a failed sync marks it (left out of every
   * list, counted and logged there) until a sync reaches it again. Once: a target already marked
   * stays as it is.
   */
  async markUnreachable(tenant: TenantId, gatewayName: string, target: string): Promise<void> {
    const stored = await this.ports.records.target(tenant, gatewayName, target);
    if (!stored || stored.value.unreachableSince) return;
    await this.ports.records.updateTarget(tenant, { ...stored.value, unreachableSince: new Date(this.#now()).toISOString() }, stored.revision);
    await this.#changed(tenant, gatewayName, 'target-sync', undefined, target, 'failed');
  }

  /**
   * Syncs again every target of these gateways that is marked unreachable: one that answers is
   * listed again. One that answers but whose sync is refused (a tool name another target shows, a
   * bound tool gone) stays out of every list; it is audited and named in `refused`, with why, the
   * first time it is refused so (not at every retry).
   */
  async retryUnreachable(gateways: readonly LoadedGateway[]): Promise<{ recovered: string[]; still: string[]; refused: { target: string; code: string; message: string }[] }> {
    const recovered: string[] = [];
    const still: string[] = [];
    const refused: { target: string; code: string; message: string }[] = [];
    for (const gateway of gateways) {
      for (const target of gateway.targets.values()) {
        if (!target.unreachableSince) continue;
        const name = `${gateway.tenant}/${gateway.name}/${target.name}`;
        try {
          await this.#sync(gateway.tenant, gateway.name, target.name, undefined);
          this.#lastRefusal.delete(name);
          recovered.push(name);
        } catch (error) {
          if (!isRefusal(error)) still.push(name);
          else if (await this.#refusedOnce(name, gateway.tenant, gateway.name, target.name, undefined, error)) refused.push({ target: name, code: error.code, message: error.message });
        }
      }
    }
    return { recovered, still, refused };
  }

  /** What the principal of `token` would see at the gateway, and why it does not see the rest. */
  async toolsFor(tenant: TenantId, gatewayName: string, token: string): Promise<ResponseOf<typeof toolsForEndpoint>> {
    const gateway = await this.#loaded(tenant, gatewayName);
    const principal = await this.ports.inbound.principal(gateway, `Bearer ${token}`).catch((error: unknown) => {
      throw new MandateError('unauthenticated', error instanceof Error ? error.message : 'the token is not accepted by this gateway');
    });
    const { visible, hidden } = gateway.catalog.explain(principal.scopes);
    const hiding = policyHiding(gateway, principal);
    const byPolicy = visible.flatMap((tool) => {
      const reason = hiding(tool);
      return reason ? [{ tool, reason, missingScopes: undefined }] : [];
    });
    return {
      principal: { ...principal.user, scopes: [...principal.scopes] },
      visible: visible.filter((tool) => !hiding(tool)).map(({ name, target, tool }) => ({ name, target, tool })),
      hidden: [...hidden, ...byPolicy].map(({ tool: { name, target, tool }, reason, missingScopes }) => ({ name, target, tool, reason, ...(missingScopes ? { missingScopes } : {}) })),
    };
  }

  /** The target's tools; every binding must name one of them. */
  async #discover(gateway: LoadedGateway, spec: TargetSpec): Promise<Discovery> {
    let discovery: Discovery;
    try {
      const headers = await this.ports.credentials.headers(gateway, spec.credential, undefined);
      discovery = await this.ports.upstream.discover(spec.source, headers, spec.timeoutMs, { tenant: gateway.tenant, gateway: gateway.name, target: spec.name });
    } catch (error) {
      if (error instanceof UpstreamFailure) throw new MandateError('unavailable', `target ${spec.name}: ${error.message}`, { cause: error });
      throw error;
    }
    const names = new Set(discovery.tools.map((tool) => tool.name));
    const unknown = spec.bindings.filter((binding) => !names.has(binding.tool));
    if (unknown.length > 0) {
      throw new MandateError('invalid_request', `target ${spec.name} has no tool ${unknown.map((binding) => binding.tool).join(', ')}`, {
        issues: unknown.map((binding) => ({ path: `target.bindings.${spec.bindings.indexOf(binding)}.tool`, message: 'no such tool at the target' })),
      });
    }
    const clashes = toolNameClashes(spec, discovery.tools, (await this.ports.records.targetsOf(gateway.tenant, gateway.name)).map((stored) => stored.value));
    if (clashes.length > 0) {
      const shown = clashes.slice(0, 20);
      const more = clashes.length > shown.length ? `; and ${clashes.length - shown.length} more` : '';
      throw new MandateError('conflict', `target ${spec.name}: ${clashes.length === 1 ? 'one of its tools cannot be named' : `${clashes.length} of its tools cannot be named`} at the gateway: ${shown.map((clash) => `${clash.tool} (${clash.message})`).join('; ')}${more}`, {
        issues: shown.map((clash) => ({ path: 'target.tools', message: `${clash.tool}: ${clash.message}` })),
      });
    }
    const bound = new Set<string>();
    for (const binding of spec.bindings) {
      if (bound.has(binding.tool)) throw new MandateError('invalid_request', `tool ${binding.tool} is bound twice`, { issues: [{ path: 'target.bindings', message: 'one binding per tool' }] });
      bound.add(binding.tool);
    }
    return discovery;
  }

  async #gateway(tenant: TenantId, name: string): Promise<StoredDocument<GatewayDocument>> {
    const stored = await this.ports.records.gateway(tenant, name);
    if (!stored) throw new MandateError('not_found', `no gateway ${name}`);
    return stored;
  }

  async #loaded(tenant: TenantId, name: string): Promise<LoadedGateway> {
    const gateway = await this.ports.registry.get(tenant, name);
    if (!gateway) throw new MandateError('not_found', `no gateway ${name}`);
    return gateway;
  }

  async #policyMisfit(tenant: TenantId, gateway: string): Promise<PolicyMisfit | undefined> {
    if (!this.ports.policyFit) return undefined;
    return this.ports.policyFit.misfit(tenant, gateway, (await this.ports.records.targetsOf(tenant, gateway)).map((target) => target.value));
  }

  /** Audits a refusal unless it is the one last audited for this target; whether it did. */
  async #refusedOnce(key: string, tenant: TenantId, gateway: string, target: string, actor: string | undefined, error: MandateError): Promise<boolean> {
    if (this.#lastRefusal.get(key) === error.message) return false;
    // Bounded by the targets that are refused at once; a target removed while refused leaves its entry until the map is full.
    if (this.#lastRefusal.size >= MAX_REMEMBERED_REFUSALS) this.#lastRefusal.delete(this.#lastRefusal.keys().next().value!);
    this.#lastRefusal.set(key, error.message);
    await this.#syncRefused(tenant, gateway, target, actor, error);
    return true;
  }

  /** A sync the gateway refused is audited as failed, with the refusal's code: nothing changed, so no event. */
  async #syncRefused(tenant: TenantId, gateway: string, target: string, actor: string | undefined, error: MandateError): Promise<void> {
    await this.ports.audit.audit({
      tenant,
      action: 'target-sync',
      outcome: 'failed',
      reason: error.code,
      actor: actor ? { admin: actor } : {},
      target: { resource: `${gateway}/${target}` },
      details: { gateway, target },
    });
  }

  async #changed(tenant: TenantId, gateway: string, action: GatewayAction, actor: string | undefined, target?: string, outcome: 'succeeded' | 'failed' = 'succeeded', policyMisfit?: PolicyMisfit): Promise<void> {
    this.ports.registry.forget(tenant, gateway);
    await this.ports.audit.audit({
      tenant,
      action,
      outcome,
      actor: actor ? { admin: actor } : {},
      target: { resource: target ? `${gateway}/${target}` : gateway },
      // The set the change broke and its failing policies (ids only: the validator's text stays in the answer).
      details: { gateway, ...(target ? { target } : {}), ...(policyMisfit ? { policyMisfit: policyMisfit.set, policyMisfitVersion: policyMisfit.version, policyIssues: policyMisfit.issues.map((issue) => issue.path).slice(0, 64) } : {}) },
    });
    await this.ports.events.publishEvent(gatewayChangedEvent, tenant, { gateway });
  }

  #view(tenant: TenantId, stored: StoredDocument<GatewayDocument>, targets: readonly StoredDocument<TargetDocument>[]): GatewayView {
    const { name, description, workload, authorizationServers, scopesSupported, interceptors, createdAt } = stored.value;
    return {
      tenant,
      name,
      description,
      workload,
      resourceUrl: resourceUrlOf(this.ports.mcpBaseUrl, tenant, name),
      authorizationServers,
      scopesSupported,
      interceptors,
      targets: targets.map((target) => target.value.name),
      createdAt,
      revision: stored.revision,
    };
  }
}

function targetView(stored: StoredDocument<TargetDocument>): TargetView {
  const { gateway: _gateway, openapi: _openapi, ...view } = stored.value;
  return { ...view, revision: stored.revision };
}
