import { gatewayToolName, type DiscoveredTool } from '@mandate/contracts';
import type { TargetDocument } from '../store/repositories.js';

/** One tool as a gateway shows it: the upstream tool under its gateway name, with what a principal needs to see it. */
export interface CatalogTool {
  /** What clients call: `<target>___<tool>`, or the target's own name (see `gatewayToolName`). */
  readonly name: string;
  readonly target: string;
  /** The upstream tool's own name. */
  readonly tool: string;
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema: DiscoveredTool['inputSchema'];
  readonly outputSchema?: DiscoveredTool['outputSchema'];
  readonly annotations?: DiscoveredTool['annotations'];
  readonly requiredScopes: readonly string[];
}

export type HiddenReason = 'hidden_by_binding' | 'missing_scopes' | 'target_unreachable' | 'name_clash';

export interface HiddenTool {
  readonly tool: CatalogTool;
  readonly reason: HiddenReason;
  readonly missingScopes?: string[];
}

/**
 * The tools of one gateway, with each target's bindings applied (required scopes, display name,
 * description, hidden). Who sees what is decided here only, so `tools/list`, `tools/call` and
 * `mandate gateway tools` cannot disagree: a tool the principal may not see is, for every caller,
 * a tool that does not exist.
 */
export class ToolCatalog {
  /** By name; a name that two tools have maps to the first of them, hidden as `name_clash`. */
  readonly #tools = new Map<string, { tool: CatalogTool; hidden?: HiddenReason }>();
  /** Every tool, clashing ones included, for `explain`. */
  readonly #all: { tool: CatalogTool; hidden?: HiddenReason }[] = [];
  /** Names two tools have: add and sync refuse them, but two changes at once can both pass that check. */
  readonly clashes: string[] = [];

  constructor(targets: readonly TargetDocument[]) {
    for (const target of [...targets].sort((a, b) => a.name.localeCompare(b.name))) {
      const bindings = new Map(target.bindings.map((binding) => [binding.tool, binding]));
      for (const discovered of target.tools) {
        const binding = bindings.get(discovered.name);
        const name = gatewayToolName(target, discovered.name);
        const title = binding?.displayName ?? discovered.title;
        const description = binding?.description ?? discovered.description;
        const tool: CatalogTool = {
          name,
          target: target.name,
          tool: discovered.name,
          ...(title !== undefined ? { title } : {}),
          ...(description !== undefined ? { description } : {}),
          inputSchema: discovered.inputSchema,
          ...(discovered.outputSchema ? { outputSchema: discovered.outputSchema } : {}),
          ...(discovered.annotations ? { annotations: discovered.annotations } : {}),
          requiredScopes: binding?.requiredScopes ?? target.defaultScopes,
        };
        const hidden = binding?.hidden ? 'hidden_by_binding' : target.unreachableSince ? 'target_unreachable' : undefined;
        const entry: { tool: CatalogTool; hidden?: HiddenReason } = { tool, ...(hidden ? { hidden } : {}) };
        this.#all.push(entry);
        const taken = this.#tools.get(name);
        // Fail closed: which of two tools a name would reach (and with whose credential) is not for the catalog to pick.
        if (taken) {
          if (taken.hidden !== 'name_clash') this.clashes.push(name);
          taken.hidden = 'name_clash';
          entry.hidden = 'name_clash';
        } else this.#tools.set(name, entry);
      }
    }
  }

  get size(): number {
    return this.#all.length;
  }

  /** The tool if this principal may see it; otherwise, as for a name that exists nowhere, nothing. */
  find(name: string, scopes: ReadonlySet<string>): CatalogTool | undefined {
    const entry = this.#tools.get(name);
    if (!entry || entry.hidden) return undefined;
    return entry.tool.requiredScopes.every((scope) => scopes.has(scope)) ? entry.tool : undefined;
  }

  /** What a principal with these scopes sees, and why it does not see the rest. */
  explain(scopes: ReadonlySet<string>): { visible: CatalogTool[]; hidden: HiddenTool[] } {
    const visible: CatalogTool[] = [];
    const hidden: HiddenTool[] = [];
    for (const { tool, hidden: reason } of this.#all) {
      const missingScopes = tool.requiredScopes.filter((scope) => !scopes.has(scope));
      if (reason) hidden.push({ tool, reason });
      else if (missingScopes.length > 0) hidden.push({ tool, reason: 'missing_scopes', missingScopes });
      else visible.push(tool);
    }
    return { visible, hidden };
  }

  visibleTo(scopes: ReadonlySet<string>): CatalogTool[] {
    return this.explain(scopes).visible;
  }
}
