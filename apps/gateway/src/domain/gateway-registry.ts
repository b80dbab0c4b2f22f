import { createHash } from 'node:crypto';
import type { JWK } from 'jose';
import { gatewayToolName, type PolicyMode } from '@mandate/contracts';
import { parsePolicySet, ToolPolicy, type ModelTool } from '@mandate/tool-policy';
import { SingleFlight } from '@mandate/cache';
import type { Interceptor, TenantId } from '@mandate/contracts';
import type { GatewayRecords, TargetDocument } from '../store/repositories.js';
import { ToolCatalog } from './tool-catalog.js';

/** A gateway as a request needs it: its identity, its key (opened), its targets and their tools. */
export interface LoadedGateway {
  readonly tenant: TenantId;
  readonly name: string;
  readonly workload: string;
  /** The store revision, so what was derived from an older gateway is not reused. */
  readonly revision: number;
  readonly resourceUrl: string;
  readonly authorizationServers: readonly string[];
  readonly scopesSupported: readonly string[];
  readonly interceptors: readonly Interceptor[];
  readonly privateJwk: JWK;
  readonly targets: ReadonlyMap<string, TargetDocument>;
  readonly catalog: ToolCatalog;
  /** The policy set it enforces, if one is attached; `unloadable` when it could not be loaded (every call is then refused). */
  readonly policy?: AttachedPolicy | 'unloadable';
}

export interface AttachedPolicy {
  readonly name: string;
  readonly version: number;
  readonly hash: string;
  readonly mode: PolicyMode;
  readonly evaluator: ToolPolicy;
}

/** Nothing answers for policy: no policy service is deployed, or (while it restarts) none is running. */
export class NoPolicyService extends Error {}

/** The policy set attached to a gateway, as the policy service answers. */
export type PolicyAttachment = { attached: false } | { attached: true; policy: string; mode: PolicyMode; version: { version: number; hash: string }; text: string };

export interface GatewayRegistryOptions {
  /** `<GATEWAY_PUBLIC_URL>/mcp`; a gateway's resource URL is this, its tenant and its name. */
  mcpBaseUrl: string;
  openKey: (tenant: TenantId, gateway: string, sealedKey: string) => JWK;
  /** Which policy set the gateway enforces; throws `NoPolicyService` when nothing answers, anything else when it cannot be told (the gateway then fails closed). */
  policyFor: (tenant: TenantId, gateway: string) => Promise<PolicyAttachment>;
  log: { warn(fields: object, message: string): void };
  /** How long a loaded gateway is used before it is read again, `gateway-changed` or not. */
  maxAgeMs: number;
  now?: () => number;
}

/** A gateway's tools as its policy sees them: every tool of every target (hidden ones too), by its gateway name. */
export function policyToolsOf(targets: readonly TargetDocument[]): ModelTool[] {
  return targets.flatMap((target) => target.tools.map((tool) => ({ name: gatewayToolName(target, tool.name), inputSchema: tool.inputSchema })));
}

export function resourceUrlOf(mcpBaseUrl: string, tenant: string, gateway: string): string {
  return `${mcpBaseUrl}/${tenant}/${gateway}`;
}

/**
 * The gateways this replica serves, read from the store when first asked for and kept until
 * `gateway-changed` says otherwise (or `maxAgeMs` passes, in case an event was missed).
 */
export class GatewayRegistry {
  static #registries = 0;
  /**
   * Names this registry's policy slots in the engine, which is one per process: two replicas in one
   * process (tests, an embedded system) would otherwise load the same slot, each load superseding
   * the other's, and the replica loaded first would deny every call.
   */
  readonly #slotPrefix = `registry-${++GatewayRegistry.#registries}`;
  readonly #loaded = new Map<string, { gateway: LoadedGateway | undefined; loadedAt: number }>();
  readonly #loading = new SingleFlight<LoadedGateway | undefined>();
  /** Gateways seen with a policy set attached: while no policy service answers, they refuse calls rather than lose their policy. */
  readonly #hadPolicy = new Set<string>();
  /** The policy set last loaded for each gateway, with what it was loaded from (the set's text and the tools). */
  readonly #evaluators = new Map<string, { fingerprint: string; evaluator: ToolPolicy }>();
  /** Bumped by `forget`, so a load that started before a change does not store what it read. */
  readonly #generations = new Map<string, number>();
  readonly #now: () => number;

  constructor(
    private readonly records: GatewayRecords,
    private readonly options: GatewayRegistryOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  async get(tenant: TenantId, name: string): Promise<LoadedGateway | undefined> {
    const key = `${tenant}/${name}`;
    const known = this.#loaded.get(key);
    if (known && this.#now() - known.loadedAt < this.options.maxAgeMs) return known.gateway;
    const generation = this.#generations.get(key) ?? 0;
    return this.#loading.run(`${key}#${generation}`, async () => {
      const gateway = await this.#load(tenant, name);
      // Misses are not kept (anyone can ask for any name); a load overtaken by a change is not kept either.
      if (gateway && (this.#generations.get(key) ?? 0) === generation) this.#loaded.set(key, { gateway, loadedAt: this.#now() });
      return gateway;
    });
  }

  /** The gateways this replica has loaded (and still holds). */
  loaded(): LoadedGateway[] {
    return [...this.#loaded.values()].flatMap(({ gateway }) => (gateway ? [gateway] : []));
  }

  forget(tenant: string, name: string): void {
    const key = `${tenant}/${name}`;
    this.#loaded.delete(key);
    this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
  }

  async #load(tenant: TenantId, name: string): Promise<LoadedGateway | undefined> {
    const stored = await this.records.gateway(tenant, name);
    if (!stored) return undefined;
    const targets = (await this.records.targetsOf(tenant, name)).map((target) => target.value);
    const { value } = stored;
    const policy = await this.#policy(tenant, name, targets);
    const catalog = new ToolCatalog(targets);
    if (catalog.clashes.length > 0) this.options.log.warn({ gateway: name, tools: catalog.clashes.slice(0, 20) }, 'two targets of this gateway show a tool under one name: every tool of such a name is hidden until one of the targets is removed or renamed');
    return {
      tenant,
      name,
      workload: value.workload,
      revision: stored.revision,
      resourceUrl: resourceUrlOf(this.options.mcpBaseUrl, tenant, name),
      authorizationServers: value.authorizationServers,
      scopesSupported: value.scopesSupported,
      interceptors: value.interceptors,
      privateJwk: this.options.openKey(tenant, name, value.sealedKey),
      targets: new Map(targets.map((target) => [target.name, target])),
      catalog,
      ...(policy ? { policy } : {}),
    };
  }

  /** The attached policy set, loaded against the gateway's tools; any failure to load it refuses every call rather than none. */
  async #policy(tenant: TenantId, gateway: string, targets: readonly TargetDocument[]): Promise<AttachedPolicy | 'unloadable' | undefined> {
    const key = `${tenant}/${gateway}`;
    try {
      const attachment = await this.options.policyFor(tenant, gateway);
      if (!attachment.attached) {
        this.#hadPolicy.delete(key);
        this.#evaluators.delete(key);
        return undefined;
      }
      this.#hadPolicy.add(key);
      const tools = policyToolsOf(targets);
      // The periodic reload (maxAgeMs) of an unchanged set against unchanged tools keeps what was loaded:
      // loading parses and validates the whole set (tens of ms for 100 policies, blocking every call).
      const fingerprint = createHash('sha256').update(JSON.stringify([attachment.version.hash, attachment.text, tools])).digest('base64url');
      const kept = this.#evaluators.get(key);
      const evaluator = kept && kept.fingerprint === fingerprint && !kept.evaluator.superseded ? kept.evaluator : ToolPolicy.load(`${this.#slotPrefix}:${key}`, attachment.version.hash, parsePolicySet(attachment.text), tools);
      this.#evaluators.set(key, { fingerprint, evaluator });
      return { name: attachment.policy, version: attachment.version.version, hash: attachment.version.hash, mode: attachment.mode, evaluator };
    } catch (err) {
      if (err instanceof NoPolicyService && !this.#hadPolicy.has(key)) return undefined;
      this.options.log.warn({ err, gateway }, 'the policy set of this gateway could not be loaded: every call is refused until it can be');
      return 'unloadable';
    }
  }
}
