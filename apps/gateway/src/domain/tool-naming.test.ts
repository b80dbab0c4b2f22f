import { describe, expect, it } from 'vitest';
import type { TargetDocument } from '../store/repositories.js';
import { toolNameClashes } from './tool-naming.js';

const schema = { type: 'object' as const, properties: {} };
const tools = (...names: string[]) => names.map((name) => ({ name, inputSchema: schema }));
const stored = (name: string, toolNames: 'prefixed' | 'as-given', ...names: string[]): TargetDocument => ({
  gateway: 'g',
  name,
  source: { kind: 'mcp', url: `https://${name}.example/mcp` },
  credential: { kind: 'none' },
  defaultScopes: [],
  bindings: [],
  toolNames,
  timeoutMs: 1_000,
  tools: tools(...names),
  syncedAt: '2026-12-01T00:00:00.000Z',
});

describe('toolNameClashes', () => {
  const others = [stored('finance', 'as-given', 'approve'), stored('crm', 'prefixed', 'notes')];

  it('finds none for prefixed names, whatever the other targets show', () => {
    expect(toolNameClashes({ name: 'copy', toolNames: 'prefixed' }, tools('approve', 'notes'), others)).toEqual([]);
    expect(toolNameClashes({ name: 'copy' }, tools('approve'), others)).toEqual([]);
  });

  it("refuses an as-given name another target shows, or one with the separator; a prefixed target's names take none", () => {
    expect(toolNameClashes({ name: 'plain', toolNames: 'as-given' }, tools('approve', 'notes', 'a___b', 'ok'), others)).toEqual([
      { tool: 'approve', message: 'target finance already has a tool of this name at the gateway' },
      { tool: 'a___b', message: 'contains ___, which only a prefixed name may' },
    ]);
  });

  it('does not count the target itself: a sync meets its own earlier tools', () => {
    expect(toolNameClashes({ name: 'finance', toolNames: 'as-given' }, tools('approve', 'reject'), others)).toEqual([]);
  });

  it('refuses a name the target lists twice, under either scheme', () => {
    for (const toolNames of ['prefixed', 'as-given'] as const) {
      expect(toolNameClashes({ name: 'twice', toolNames }, tools('x', 'y', 'x'), [])).toEqual([{ tool: 'x', message: 'the target lists two tools of this name' }]);
    }
  });
});
