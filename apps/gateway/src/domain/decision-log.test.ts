import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decisionSealId, sealedDecisionRequestSchema, tenantId, type DecisionEntry } from '@mandate/contracts';
import { EnvelopeCipher, KeyRing } from '@mandate/crypto';
import { parsePolicySet, ToolPolicy, type Decided } from '@mandate/tool-policy';
import { DecisionLog, WRITE_INTERVAL_MS, type DecisionLogPorts } from './decision-log.js';
import type { LoadedGateway } from './gateway-registry.js';
import type { ToolCallRequest } from './tool-call.js';
import type { CatalogTool } from './tool-catalog.js';

const tool: CatalogTool = { name: 'finance___approve_expense', target: 'finance', tool: 'approve_expense', inputSchema: { type: 'object', properties: { amount: { type: 'number' } } }, requiredScopes: [] };
const evaluator = ToolPolicy.load('decision-log-test', 'v1', parsePolicySet('@id("all") permit (principal, action, resource);'), [tool]);
const gateway = { tenant: tenantId('acme'), name: 'finance-gw', policy: { name: 'expenses', version: 3, hash: 'hash-3', mode: 'log-only', evaluator } } as unknown as LoadedGateway;
const decided: Decided = { enforced: { decision: 'deny', determining: [], errors: [] }, withLogOnly: { decision: 'allow', determining: ['all'], errors: [] } };
const AT = Date.parse('2026-12-02T08:00:00Z');

function request(): ToolCallRequest {
  return {
    gateway,
    name: tool.name,
    arguments: { amount: 150 },
    urlElicitation: false,
    principal: {
      user: { iss: 'https://idp.example', sub: 'sarah' },
      clientId: 'expense-agent',
      scopes: new Set(['finance.write']),
      claims: { iss: 'https://idp.example', sub: 'sarah', aud: 'x', jti: 'token-1', groups: ['finance'], department: 'emea', email_verified: true },
      expiresAt: AT + 60_000,
      userToken: () => 'the-token',
    },
  };
}

function harness(publish: (entry: DecisionEntry) => Promise<void> = async () => undefined) {
  const cipher = new EnvelopeCipher(KeyRing.generate());
  const published: DecisionEntry[] = [];
  const dropped: string[] = [];
  const ports: DecisionLogPorts = {
    seal: (plaintext, sealId) => cipher.sealToString(plaintext, sealId),
    publish: async (entry) => {
      await publish(entry);
      published.push(entry);
    },
    dropped: (reason) => void dropped.push(reason),
  };
  return { log: new DecisionLog(ports), cipher, published, dropped };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, WRITE_INTERVAL_MS * 3));

describe('DecisionLog', () => {
  it('writes one entry per decided call, after its audit record, keyed by the record id, the request sealed to that entry', async () => {
    const { log, cipher, published } = harness();
    const call = request();
    const id = randomUUID();
    log.decided(call, tool, decided, AT);
    log.audited(call, { id, other: 'fields' });
    expect(published).toHaveLength(0);
    await settled();
    expect(published).toHaveLength(1);
    const [entry] = published;
    expect(entry).toMatchObject({
      id,
      tenant: 'acme',
      gateway: 'finance-gw',
      recordedAt: '2026-12-02T08:00:00.000Z',
      tool: 'finance___approve_expense',
      principal: { iss: 'https://idp.example', sub: 'sarah' },
      policySet: 'expenses',
      policyVersion: 'hash-3',
      mode: 'log-only',
      decided: { decision: 'deny', determining: [] },
      withLogOnly: { decision: 'allow', determining: ['all'] },
    });
    expect(Buffer.from(entry!.sealed, 'base64url').includes('"amount"')).toBe(false);
    expect(JSON.stringify(entry)).not.toContain('emea');
    const opened = sealedDecisionRequestSchema.parse(JSON.parse(cipher.openString(entry!.sealed, decisionSealId('acme', 'finance-gw', id)).toString('utf8')));
    expect(opened).toEqual({ claims: { groups: ['finance'], department: 'emea' }, scopes: ['finance.write'], client: 'expense-agent', arguments: { amount: 150 }, now: AT });
    expect(() => cipher.openString(entry!.sealed, decisionSealId('acme', 'finance-gw', randomUUID()))).toThrow();
    // A second record for the same request writes no second entry.
    log.audited(call, { id: randomUUID() });
    await settled();
    expect(published).toHaveLength(1);
  });

  it('writes the entries of the calls in an interval together, after it, and at once when drained', async () => {
    const { log, published } = harness();
    const calls = [request(), request(), request()];
    for (const call of calls) {
      log.decided(call, tool, decided, AT);
      log.audited(call, { id: randomUUID() });
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(published).toHaveLength(0);
    await settled();
    expect(published).toHaveLength(3);
    const last = request();
    log.decided(last, tool, decided, AT);
    const id = randomUUID();
    log.audited(last, { id });
    await log.drain();
    expect(published.map((entry) => entry.id)).toContain(id);
    expect(published).toHaveLength(4);
  });

  it('writes nothing for a call policy did not decide, and drops (and says so) what it cannot write', async () => {
    const { log, published, dropped } = harness();
    log.audited(request(), { id: randomUUID() });
    const noId = request();
    log.decided(noId, tool, decided, AT);
    log.audited(noId, undefined);
    await settled();
    expect(published).toEqual([]);
    expect(dropped).toEqual(['no_record_id']);
    const failing = harness(async () => Promise.reject(new Error('bus down')));
    const call = request();
    failing.log.decided(call, tool, decided, AT);
    failing.log.audited(call, { id: randomUUID() });
    await settled();
    expect(failing.dropped).toEqual(['publish_failed']);
    const huge = { ...request(), arguments: { note: 'x'.repeat(600 * 1024) } };
    log.decided(huge, tool, decided, AT);
    log.audited(huge, { id: randomUUID() });
    await settled();
    expect(published).toEqual([]);
    expect(dropped).toEqual(['no_record_id', 'too_large']);
  });

  it('drops past 1,000 entries in flight rather than let a slow bus hold them all', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const { log, published, dropped } = harness(() => stuck);
    for (let i = 0; i < 1_001; i += 1) {
      const call = request();
      log.decided(call, tool, decided, AT);
      log.audited(call, { id: randomUUID() });
    }
    expect(dropped).toEqual(['backlog']);
    release();
    await settled();
    expect(published).toHaveLength(1_000);
  });
});
