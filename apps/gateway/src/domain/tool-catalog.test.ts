import { describe, expect, it } from 'vitest';
import type { TargetDocument } from '../store/repositories.js';
import { ToolCatalog } from './tool-catalog.js';

const schema = { type: 'object' as const, properties: {} };

function target(name: string, overrides: Partial<TargetDocument> = {}): TargetDocument {
  return {
    gateway: 'sales',
    name,
    source: { kind: 'mcp', url: `https://${name}.example/mcp` },
    credential: { kind: 'none' },
    defaultScopes: ['crm.read'],
    bindings: [],
    timeoutMs: 1_000,
    tools: [
      { name: 'notes', description: 'upstream notes', inputSchema: schema },
      { name: 'spend', inputSchema: schema },
    ],
    syncedAt: '2026-12-01T00:00:00.000Z',
    ...overrides,
  };
}

describe('ToolCatalog', () => {
  const catalog = new ToolCatalog([
    target('crm', { bindings: [{ tool: 'spend', requiredScopes: ['finance.read'], displayName: 'Spend', description: 'From finance', hidden: false }] }),
    target('admin', { bindings: [{ tool: 'notes', hidden: true }] }),
    target('flaky', { unreachableSince: '2026-12-01T00:00:00.000Z' }),
  ]);

  it('names each tool <target>___<tool> and applies the bindings', () => {
    const all = catalog.visibleTo(new Set(['crm.read', 'finance.read']));
    expect(all.map((tool) => tool.name)).toEqual(['admin___spend', 'crm___notes', 'crm___spend']);
    expect(all.find((tool) => tool.name === 'crm___spend')).toMatchObject({ title: 'Spend', description: 'From finance', requiredScopes: ['finance.read'] });
    expect(all.find((tool) => tool.name === 'crm___notes')).toMatchObject({ description: 'upstream notes', requiredScopes: ['crm.read'] });
  });

  it('hides a tool whose scopes the principal lacks, saying which, and says why the others are hidden', () => {
    const { visible, hidden } = catalog.explain(new Set(['crm.read']));
    expect(visible.map((tool) => tool.name)).toEqual(['admin___spend', 'crm___notes']);
    expect(hidden.map(({ tool, reason, missingScopes }) => [tool.name, reason, missingScopes])).toEqual([
      ['admin___notes', 'hidden_by_binding', undefined],
      ['crm___spend', 'missing_scopes', ['finance.read']],
      ['flaky___notes', 'target_unreachable', undefined],
      ['flaky___spend', 'target_unreachable', undefined],
    ]);
  });

  it('finds a tool only for a principal who may see it, so a hidden tool and a missing one look the same', () => {
    const scopes = new Set(['crm.read']);
    expect(catalog.find('crm___notes', scopes)?.tool).toBe('notes');
    for (const name of ['crm___spend', 'admin___notes', 'flaky___notes', 'crm___nothing', 'nothing']) expect(catalog.find(name, scopes)).toBeUndefined();
  });
});

describe('ToolCatalog with tools named as their targets give them', () => {
  it('names an as-given tool by its own name, beside prefixed ones', () => {
    const catalog = new ToolCatalog([target('crm'), target('plain', { toolNames: 'as-given', tools: [{ name: 'lookup', inputSchema: schema }] })]);
    expect(catalog.visibleTo(new Set(['crm.read'])).map((tool) => tool.name)).toEqual(['crm___notes', 'crm___spend', 'lookup']);
    expect(catalog.find('lookup', new Set(['crm.read']))).toMatchObject({ target: 'plain', tool: 'lookup' });
    expect(catalog.clashes).toEqual([]);
  });

  it('hides every tool of a name two targets show (two changes at once can both pass the check at add), rather than pick one', () => {
    const catalog = new ToolCatalog([target('one', { toolNames: 'as-given' }), target('two', { toolNames: 'as-given', tools: [{ name: 'notes', inputSchema: schema }] })]);
    const scopes = new Set(['crm.read']);
    expect(catalog.find('notes', scopes)).toBeUndefined();
    expect(catalog.find('spend', scopes)).toMatchObject({ target: 'one' });
    expect(catalog.clashes).toEqual(['notes']);
    const { hidden } = catalog.explain(scopes);
    expect(hidden.map(({ tool, reason }) => [tool.target, tool.name, reason])).toEqual([
      ['one', 'notes', 'name_clash'],
      ['two', 'notes', 'name_clash'],
    ]);
  });
});
