import { gatewayToolName, TOOL_NAME_SEPARATOR, type DiscoveredTool, type TargetSpec } from '@mandate/contracts';
import type { TargetDocument } from '../store/repositories.js';

export interface ToolNameClash {
  readonly tool: string;
  readonly message: string;
}

/**
 * Why some of a target's tools could not be named at its gateway: a name the target lists twice
 * (under either scheme), an as-given name with the
 * separator in it (it could be mistaken for, or become, a prefixed one) or one that another
 * target's tool already has. Prefixed names cannot clash: a target's name has no separator.
 */
export function toolNameClashes(target: Pick<TargetSpec, 'name' | 'toolNames'>, tools: readonly DiscoveredTool[], others: readonly TargetDocument[]): ToolNameClash[] {
  const seen = new Set<string>();
  const twice = tools.filter((tool) => seen.size === seen.add(tool.name).size).map((tool): ToolNameClash => ({ tool: tool.name, message: 'the target lists two tools of this name' }));
  if (twice.length > 0 || target.toolNames !== 'as-given') return twice;
  const taken = new Map<string, string>();
  for (const other of others) {
    if (other.name === target.name) continue;
    for (const tool of other.tools) taken.set(gatewayToolName(other, tool.name), other.name);
  }
  return tools.flatMap((tool): ToolNameClash[] => {
    if (tool.name.includes(TOOL_NAME_SEPARATOR)) return [{ tool: tool.name, message: `contains ${TOOL_NAME_SEPARATOR}, which only a prefixed name may` }];
    const owner = taken.get(tool.name);
    return owner ? [{ tool: tool.name, message: `target ${owner} already has a tool of this name at the gateway` }] : [];
  });
}
