import { MandateError, type AuditActionOf, type AuditSink, type policyAudit, type policyExplainEndpoint, type ResponseOf, type TenantId } from '@mandate/contracts';
import { parsePolicySet } from '@mandate/tool-policy';
import type { OpenedDecision } from '../store/decision-log-reader.js';
import type { PolicyRecords } from '../store/repositories.js';

type Explanation = ResponseOf<typeof policyExplainEndpoint>;

export interface DecisionExplanationPorts {
  decisions: { byId(tenant: TenantId, id: string): Promise<OpenedDecision | undefined> };
  records: PolicyRecords;
  audit: AuditSink<AuditActionOf<typeof policyAudit>>;
}

/**
 * `explain`: one recorded decision, by the id of its call's audit record: the request as Cedar saw
 * it, what was decided, and the text of the policies that decided, from the version that decided
 * (found by its hash among the set's versions; a deleted set's policies are named without text).
 */
export class DecisionExplanation {
  constructor(private readonly ports: DecisionExplanationPorts) {}

  async explain(tenant: TenantId, id: string, actor: string | undefined): Promise<Explanation> {
    const opened = await this.ports.decisions.byId(tenant, id);
    if (!opened) throw new MandateError('not_found', `no decision is kept for audit record ${id}: it was not a policy decision, or it is past the decision log's retention`);
    if ('unreadable' in opened) throw new MandateError('internal', `the decision log entry of audit record ${id} cannot be opened (${opened.unreadable.replace('_', ' ')})`);
    const { entry, request } = opened;
    const version = await this.#version(tenant, entry.policySet, entry.policyVersion);
    const withText = (ids: readonly string[]) => ids.map((policyId) => ({ id: policyId, ...(version?.policies[policyId] !== undefined ? { text: version.policies[policyId] } : {}) }));
    const explanation: Explanation = {
      id: entry.id,
      gateway: entry.gateway,
      recordedAt: entry.recordedAt,
      tool: entry.tool,
      principal: entry.principal,
      ...(request.client ? { client: request.client } : {}),
      claims: request.claims,
      scopes: request.scopes,
      arguments: request.arguments,
      time: new Date(request.now).toISOString(),
      policySet: { name: entry.policySet, hash: entry.policyVersion, ...(version ? { version: version.number } : {}) },
      mode: entry.mode,
      decision: entry.decided.decision,
      determining: withText(entry.decided.determining),
      ...(entry.withLogOnly ? { withLogOnly: { decision: entry.withLogOnly.decision, determining: withText(entry.withLogOnly.determining) } } : {}),
    };
    await this.ports.audit.audit({
      tenant,
      action: 'policy-explain',
      outcome: 'succeeded',
      actor: actor ? { admin: actor } : {},
      target: { resource: entry.gateway },
      details: { record: entry.id, gateway: entry.gateway, policySet: entry.policySet },
    });
    return explanation;
  }

  /** The version of a set with this hash, its policies by id; undefined when the set or the version is gone. */
  async #version(tenant: TenantId, policySet: string, hash: string): Promise<{ number: number; policies: Readonly<Record<string, string>> } | undefined> {
    const stored = await this.ports.records.policy(tenant, policySet);
    const version = stored?.value.versions.find((v) => v.hash === hash);
    if (!version) return undefined;
    const text = await this.ports.records.text(tenant, policySet, version.version);
    return text === undefined ? undefined : { number: version.version, policies: parsePolicySet(text).policies };
  }
}
