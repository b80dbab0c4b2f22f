import type { BusClient } from '@mandate/bus';
import { gatewayToolName, targetListEndpoint, type TenantId } from '@mandate/contracts';
import type { ModelTool } from '@mandate/tool-policy';

/**
 * A gateway's tools as its policy sees them, from the gateway service: every tool of every target,
 * hidden ones too (a policy may name a tool a binding hides); `not_found` for an unknown gateway.
 */
export function gatewayToolsOver(bus: BusClient): (tenant: TenantId, gateway: string) => Promise<ModelTool[]> {
  return async (tenant, gateway) =>
    (await bus.request(targetListEndpoint, { tenant, gateway })).items.flatMap((target) => target.tools.map((tool) => ({ name: gatewayToolName(target, tool.name), inputSchema: tool.inputSchema })));
}
