import type { PolicyMisfit, TenantId } from '@mandate/contracts';
import { cedarSchemaFor, parsePolicySet, validationIssues } from '@mandate/tool-policy';
import type { TargetDocument } from '../store/repositories.js';
import { NoPolicyService, policyToolsOf, type GatewayRegistryOptions } from './gateway-registry.js';

/**
 * Whether the policy set attached to a gateway still validates against its tools, asked after the
 * tools change (a target added, removed or synced), so that whoever changed them is told which
 * policies broke, and the change's audit record says so. The gateway itself refuses every call
 * while the set does not load; this is what makes that visible at the moment it starts. A policy
 * service that cannot be asked is no misfit: the change stands either way.
 */
export class PolicyFit {
  constructor(
    private readonly policyFor: GatewayRegistryOptions['policyFor'],
    private readonly log: GatewayRegistryOptions['log'],
  ) {}

  async misfit(tenant: TenantId, gateway: string, targets: readonly TargetDocument[]): Promise<PolicyMisfit | undefined> {
    try {
      const attachment = await this.policyFor(tenant, gateway);
      if (!attachment.attached) return undefined;
      const issues = validationIssues(parsePolicySet(attachment.text), cedarSchemaFor(policyToolsOf(targets)));
      return issues.length > 0 ? { set: attachment.policy, version: attachment.version.version, issues } : undefined;
    } catch (err) {
      if (!(err instanceof NoPolicyService)) this.log.warn({ err, gateway }, 'could not check the attached policy set against the changed tools');
      return undefined;
    }
  }
}
