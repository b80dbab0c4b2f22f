import { createHash } from 'node:crypto';
import {
  MandateError,
  policyChangedEvent,
  type AuditActionOf,
  type AuditSink,
  type EventSink,
  type FieldIssue,
  type PolicyMode,
  type PolicyView,
  type policyAudit,
  type policyForGatewayEndpoint,
  type policyListEndpoint,
  type policySetModeEndpoint,
  type policyValidateEndpoint,
  type policyVersionsEndpoint,
  type ResponseOf,
  type TenantId,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import { assertValidates, parsePolicySet, validationIssues, cedarSchemaFor, type ModelTool } from '@mandate/tool-policy';
import type { PolicyDocument, PolicyRecords, PolicyVersionInfo } from '../store/repositories.js';

type PolicyAction = AuditActionOf<typeof policyAudit>;

export interface PolicyAdministrationPorts {
  records: PolicyRecords;
  audit: AuditSink<PolicyAction>;
  events: EventSink;
  /** The tools of a gateway as its policy sees them (every tool of every target, by gateway name). */
  gatewayTools(tenant: TenantId, gateway: string): Promise<ModelTool[]>;
  now?: () => number;
}

/**
 * Policy sets and their versions, and which gateway enforces which set in which mode. A version
 * is written once and never changed; a new text is a new version. Whatever a gateway would
 * enforce is checked against that gateway's tools first, so a set that no longer validates is
 * refused rather than loaded (a gateway that cannot load its set fails closed).
 */
export class PolicyAdministration {
  readonly #now: () => number;

  constructor(private readonly ports: PolicyAdministrationPorts) {
    this.#now = ports.now ?? Date.now;
  }

  async create(tenant: TenantId, name: string, description: string, text: string, actor: string | undefined): Promise<PolicyView> {
    parsePolicySet(text);
    if (await this.ports.records.policy(tenant, name)) throw new MandateError('conflict', `policy set ${name} already exists`);
    const version = this.#version(1, text, actor);
    await this.ports.records.putText(tenant, name, 1, text);
    const stored = await this.ports.records.createPolicy(tenant, { name, description, active: 1, versions: [version] });
    await this.#audit(tenant, 'policy-create', name, actor, { version: 1, hash: version.hash });
    return this.#view(tenant, stored, text);
  }

  async update(tenant: TenantId, name: string, text: string, actor: string | undefined): Promise<PolicyView> {
    const stored = await this.#policy(tenant, name);
    await this.#checkForGateways(tenant, name, text);
    const number = Math.max(...stored.value.versions.map((v) => v.version)) + 1;
    await this.ports.records.putText(tenant, name, number, text);
    const updated = await this.ports.records.updatePolicy(tenant, { ...stored.value, active: number, versions: [...stored.value.versions, this.#version(number, text, actor)] }, stored.revision);
    await this.#audit(tenant, 'policy-update', name, actor, { version: number });
    await this.#announce(tenant, name);
    return this.#view(tenant, updated, text);
  }

  async get(tenant: TenantId, name: string): Promise<PolicyView> {
    const stored = await this.#policy(tenant, name);
    return this.#view(tenant, stored, await this.#text(tenant, name, stored.value.active));
  }

  async list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<ResponseOf<typeof policyListEndpoint>> {
    const page = await this.ports.records.listPolicies(tenant, limit, cursor);
    const items = await Promise.all(page.items.map(async (stored) => this.#view(tenant, stored, await this.#text(tenant, stored.value.name, stored.value.active))));
    return { items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async versions(tenant: TenantId, name: string): Promise<ResponseOf<typeof policyVersionsEndpoint>> {
    const { value } = await this.#policy(tenant, name);
    return { items: [...value.versions].reverse().map((version) => ({ ...version, active: version.version === value.active })) };
  }

  /** Makes another version active (a rollback activates the one before), after checking it against the gateways it would apply to. */
  async activate(tenant: TenantId, name: string, version: number, actor: string | undefined): Promise<PolicyView> {
    const stored = await this.#policy(tenant, name);
    if (!stored.value.versions.some((v) => v.version === version)) throw new MandateError('not_found', `policy set ${name} has no version ${version}`);
    const text = await this.#text(tenant, name, version);
    await this.#checkForGateways(tenant, name, text);
    const updated = await this.ports.records.updatePolicy(tenant, { ...stored.value, active: version }, stored.revision);
    await this.#audit(tenant, 'policy-activate', name, actor, { version, previous: stored.value.active });
    await this.#announce(tenant, name);
    return this.#view(tenant, updated, text);
  }

  async delete(tenant: TenantId, name: string, actor: string | undefined): Promise<{ deleted: true }> {
    const stored = await this.#policy(tenant, name);
    const attached = (await this.ports.records.attachmentsOf(tenant)).filter((a) => a.policy === name).map((a) => a.gateway);
    if (attached.length > 0) throw new MandateError('conflict', `policy set ${name} is attached to ${attached.join(', ')}; detach it first`);
    await this.ports.records.deletePolicy(tenant, name);
    await this.ports.records.deleteTexts(tenant, name, stored.value.versions.map((v) => v.version));
    await this.#audit(tenant, 'policy-delete', name, actor);
    return { deleted: true };
  }

  async attach(tenant: TenantId, gateway: string, name: string, mode: PolicyMode, actor: string | undefined) {
    const stored = await this.#policy(tenant, name);
    const text = await this.#text(tenant, name, stored.value.active);
    const tools = await this.ports.gatewayTools(tenant, gateway);
    const active = stored.value.versions.find((v) => v.version === stored.value.active)!;
    assertValidates(parsePolicySet(text), tools);
    const previous = await this.ports.records.attachment(tenant, gateway);
    if (previous?.value.policy === name && previous.value.mode !== mode) {
      throw new MandateError('conflict', `gateway ${gateway} already has policy set ${name} attached in ${previous.value.mode} mode; changing the mode is its own operation (policy-set-mode, \`mandate policy mode\`)`);
    }
    await this.ports.records.putAttachment(tenant, { gateway, policy: name, mode });
    await this.#audit(tenant, 'policy-attach', name, actor, { gateway, mode, ...(previous ? { previousPolicy: previous.value.policy, previousMode: previous.value.mode } : {}) });
    await this.ports.events.publishEvent(policyChangedEvent, tenant, { gateway });
    return { gateway, policy: name, mode, version: active };
  }

  /** Its own operation and permission, apart from attaching: flipping a set from log-only to enforce is a decision of its own. */
  async setMode(tenant: TenantId, gateway: string, mode: PolicyMode, actor: string | undefined): Promise<ResponseOf<typeof policySetModeEndpoint>> {
    const attachment = await this.ports.records.attachment(tenant, gateway);
    if (!attachment) throw new MandateError('not_found', `gateway ${gateway} has no policy set attached`);
    const { policy, mode: previousMode } = attachment.value;
    if (previousMode === mode) return { gateway, policy, mode, previousMode, changed: false };
    await this.ports.records.updateAttachment(tenant, { gateway, policy, mode }, attachment.revision);
    await this.#audit(tenant, 'policy-mode', policy, actor, { gateway, mode, previousMode });
    await this.ports.events.publishEvent(policyChangedEvent, tenant, { gateway });
    return { gateway, policy, mode, previousMode, changed: true };
  }

  async detach(tenant: TenantId, gateway: string, actor: string | undefined): Promise<{ detached: true }> {
    const attachment = await this.ports.records.attachment(tenant, gateway);
    if (!attachment) throw new MandateError('not_found', `gateway ${gateway} has no policy set attached`);
    await this.ports.records.deleteAttachment(tenant, gateway);
    await this.#audit(tenant, 'policy-detach', attachment.value.policy, actor, { gateway, mode: attachment.value.mode });
    await this.ports.events.publishEvent(policyChangedEvent, tenant, { gateway });
    return { detached: true };
  }

  async validate(tenant: TenantId, text: string, gateway: string | undefined): Promise<ResponseOf<typeof policyValidateEndpoint>> {
    let parsed: ReturnType<typeof parsePolicySet>;
    try {
      parsed = parsePolicySet(text);
    } catch (error) {
      if (error instanceof MandateError && error.code === 'invalid_request') return { valid: false, policies: [], issues: error.issues ?? [{ path: 'policies', message: error.message }] };
      throw error;
    }
    const issues: FieldIssue[] = gateway ? validationIssues(parsed, cedarSchemaFor(await this.ports.gatewayTools(tenant, gateway))) : [];
    return { valid: issues.length === 0, policies: Object.keys(parsed.policies), issues };
  }

  async forGateway(tenant: TenantId, gateway: string): Promise<ResponseOf<typeof policyForGatewayEndpoint>> {
    const attachment = await this.ports.records.attachment(tenant, gateway);
    if (!attachment) return { attached: false };
    const stored = await this.#policy(tenant, attachment.value.policy);
    const version = stored.value.versions.find((v) => v.version === stored.value.active)!;
    return { attached: true, policy: attachment.value.policy, mode: attachment.value.mode, version, text: await this.#text(tenant, attachment.value.policy, version.version) };
  }

  /** A text about to be enforced by gateways must load against each one's tools. */
  async #checkForGateways(tenant: TenantId, name: string, text: string): Promise<void> {
    const parsed = parsePolicySet(text);
    for (const attachment of (await this.ports.records.attachmentsOf(tenant)).filter((a) => a.policy === name)) {
      assertValidates(parsed, await this.ports.gatewayTools(tenant, attachment.gateway));
    }
  }

  async #announce(tenant: TenantId, name: string): Promise<void> {
    for (const attachment of (await this.ports.records.attachmentsOf(tenant)).filter((a) => a.policy === name)) {
      await this.ports.events.publishEvent(policyChangedEvent, tenant, { gateway: attachment.gateway });
    }
  }

  async #policy(tenant: TenantId, name: string): Promise<StoredDocument<PolicyDocument>> {
    const stored = await this.ports.records.policy(tenant, name);
    if (!stored) throw new MandateError('not_found', `no policy set ${name}`);
    return stored;
  }

  async #text(tenant: TenantId, name: string, version: number): Promise<string> {
    const text = await this.ports.records.text(tenant, name, version);
    if (text === undefined) throw new MandateError('internal', `version ${version} of policy set ${name} has no text`);
    return text;
  }

  #version(version: number, text: string, actor: string | undefined): PolicyVersionInfo {
    return { version, hash: hashOf(text), createdAt: new Date(this.#now()).toISOString(), ...(actor ? { actor } : {}) };
  }

  async #view(tenant: TenantId, stored: StoredDocument<PolicyDocument>, text: string): Promise<PolicyView> {
    const { name, description, active, versions } = stored.value;
    const attachedTo = (await this.ports.records.attachmentsOf(tenant)).filter((a) => a.policy === name).map(({ gateway, mode }) => ({ gateway, mode }));
    return { tenant, name, description, active: versions.find((v) => v.version === active)!, text, versions: versions.length, attachedTo, revision: stored.revision };
  }

  async #audit(tenant: TenantId, action: PolicyAction, policy: string, actor: string | undefined, details: Record<string, string | number> = {}): Promise<void> {
    await this.ports.audit.audit({ tenant, action, outcome: 'succeeded', actor: actor ? { admin: actor } : {}, target: { resource: policy }, details: { policy, ...details } });
  }
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}
