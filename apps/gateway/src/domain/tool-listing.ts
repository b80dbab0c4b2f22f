import { lazyInstruments } from '@mandate/telemetry';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';

const instruments = lazyInstruments('@mandate/gateway', (meter) => ({
  unreachable: meter.createCounter('mandate.gateway.targets.unreachable', { description: 'tools/list answers that left out a target whose last sync could not reach it' }),
}));

/** `tools/list`: what this principal may see. A target that could not be reached at its last sync is left out, and said so in the log. */
export class ToolListing {
  constructor(private readonly log: { warn(fields: object, message: string): void }) {}

  list(gateway: LoadedGateway, principal: Principal): CatalogTool[] {
    for (const target of gateway.targets.values()) {
      if (!target.unreachableSince) continue;
      instruments().unreachable.add(1, { gateway: gateway.name, target: target.name });
      this.log.warn({ gateway: gateway.name, target: target.name, since: target.unreachableSince }, 'tools/list leaves out a target that could not be reached at its last sync');
    }
    return gateway.catalog.visibleTo(principal.scopes);
  }
}
