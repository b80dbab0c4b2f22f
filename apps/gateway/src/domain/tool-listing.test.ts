import { describe, expect, it } from 'vitest';
import { parsePolicySet, ToolPolicy } from '@mandate/tool-policy';
import type { TargetDocument } from '../store/repositories.js';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import { ToolCatalog } from './tool-catalog.js';
import { ToolListing } from './tool-listing.js';

const schema = { type: 'object' as const, properties: {} };
const target = (name: string, unreachableSince?: string): TargetDocument => ({
  gateway: 'sales',
  name,
  source: { kind: 'mcp', url: `https://${name}.example/mcp` },
  credential: { kind: 'none' },
  defaultScopes: [],
  bindings: [],
  timeoutMs: 1_000,
  tools: [{ name: 'tool', inputSchema: schema }],
  syncedAt: '2026-12-01T00:00:00.000Z',
  ...(unreachableSince ? { unreachableSince } : {}),
});

describe('ToolListing', () => {
  const targets = [target('up'), target('down', '2026-12-01T00:00:00.000Z')];
  const gateway = { tenant: 'acme', name: 'sales', targets: new Map(targets.map((t) => [t.name, t])), catalog: new ToolCatalog(targets) } as unknown as LoadedGateway;
  const principal = { scopes: new Set<string>() } as unknown as Principal;

  it('leaves out an unreachable target, and says so once a minute, not on every list', () => {
    const warnings: string[] = [];
    let now = 0;
    const listing = new ToolListing({ warn: (_fields, message) => void warnings.push(message) }, () => now);
    expect(listing.list(gateway, principal).map((t) => t.name)).toEqual(['up___tool']);
    listing.list(gateway, principal);
    listing.list(gateway, principal);
    expect(warnings).toHaveLength(1);
    now += 61_000;
    listing.list(gateway, principal);
    expect(warnings).toHaveLength(2);
  });

  it('lists with a policy set only what some call could be permitted; in log-only everything; with a set that cannot load nothing', () => {
    const reachable = [target('crm'), target('finance')];
    const evaluator = ToolPolicy.load('tool-listing-test', 'v1', parsePolicySet('permit (principal, action == Mandate::Action::"crm___tool", resource);'), reachable.map((t) => ({ name: `${t.name}___tool`, inputSchema: schema })));
    const withPolicy = (policy: LoadedGateway['policy']) => ({ tenant: 'acme', name: 'sales', targets: new Map(reachable.map((t) => [t.name, t])), catalog: new ToolCatalog(reachable), policy }) as unknown as LoadedGateway;
    const sarah = { user: { iss: 'https://idp.example', sub: 'sarah' }, claims: {}, scopes: new Set<string>() } as unknown as Principal;
    const listing = new ToolListing({ warn: () => undefined });
    const attached = { name: 'p', version: 1, hash: 'h', evaluator };
    expect(listing.list(withPolicy({ ...attached, mode: 'enforce' }), sarah).map((t) => t.name)).toEqual(['crm___tool']);
    expect(listing.list(withPolicy({ ...attached, mode: 'log-only' }), sarah).map((t) => t.name)).toEqual(['crm___tool', 'finance___tool']);
    expect(listing.list(withPolicy('unloadable'), sarah)).toEqual([]);
  });
});
