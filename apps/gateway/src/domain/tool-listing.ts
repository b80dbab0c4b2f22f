import { lazyInstruments } from '@mandate/telemetry';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';

const instruments = lazyInstruments('@mandate/gateway', (meter) => ({
  unreachable: meter.createCounter('mandate.gateway.targets.unreachable', { description: 'tools/list answers that left out a target whose last sync could not reach it' }),
}));

/** One warning per target this often at most: every client's list would otherwise repeat it. */
const WARN_EVERY_MS = 60_000;

/**
 * `tools/list`: what this principal may see. A target that could not be reached at its last sync
 * is left out, counted, and said so in the log. With a policy set enforced, a tool is listed only
 * if some call of it by this principal could be permitted (`ToolPolicy.mayPermit`); in `log-only`
 * mode nothing is hidden (nothing is enforced), and a set that cannot be loaded lists nothing (as
 * every call is refused).
 */
export class ToolListing {
  readonly #warned = new Map<string, number>();

  constructor(
    private readonly log: { warn(fields: object, message: string): void },
    private readonly now: () => number = Date.now,
  ) {}

  list(gateway: LoadedGateway, principal: Principal): CatalogTool[] {
    for (const target of gateway.targets.values()) {
      if (!target.unreachableSince) continue;
      instruments().unreachable.add(1, { gateway: gateway.name, target: target.name });
      const key = `${gateway.tenant}/${gateway.name}/${target.name}`;
      const now = this.now();
      if (now - (this.#warned.get(key) ?? -Infinity) < WARN_EVERY_MS) continue;
      if (this.#warned.size >= 10_000) this.#warned.clear();
      this.#warned.set(key, now);
      this.log.warn({ gateway: gateway.name, target: target.name, since: target.unreachableSince }, 'tools/list leaves out a target that could not be reached at its last sync');
    }
    const hiding = policyHiding(gateway, principal);
    return gateway.catalog.visibleTo(principal.scopes).filter((tool) => !hiding(tool));
  }
}

/** Why the gateway's policy set keeps a tool out of a principal's list. */
export type PolicyHiddenReason = 'denied_by_policy' | 'policy_unloadable';

/**
 * What the gateway's policy set hides from this principal, tool by tool: `tools/list`,
 * `tools/call` (a hidden tool is answered as one that does not exist) and `mandate gateway tools`
 * all ask here, so they cannot disagree.
 */
export function policyHiding(gateway: LoadedGateway, principal: Principal): (tool: CatalogTool) => PolicyHiddenReason | undefined {
  const { policy } = gateway;
  if (!policy) return () => undefined;
  if (policy === 'unloadable') return () => 'policy_unloadable';
  if (policy.mode === 'log-only') return () => undefined;
  const mayPermit = policy.evaluator.mayPermit({ user: principal.user, claims: principal.claims, scopes: [...principal.scopes], client: principal.clientId, gateway: gateway.name });
  return (tool) => (mayPermit(tool.name) ? undefined : 'denied_by_policy');
}
