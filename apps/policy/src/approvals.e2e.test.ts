import type { JWK } from 'jose';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalConsumeEndpoint,
  approvalDecideEndpoint,
  approvalGetEndpoint,
  approvalListEndpoint,
  approvalRequestEndpoint,
  gatewayCreateEndpoint,
  MandateError,
  type AuditCatalog,
  type AuditSink,
  type RequestOf,
  type TenantId,
} from '@mandate/contracts';
import { JetStreamPublisher } from '@mandate/bus';
import { JetStreamKvStore } from '@mandate/store';
import { FrozenClock } from '@mandate/store/testing';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { Approvals } from './approvals.assembly.js';
import { ApprovalRecords } from './store/approval-records.js';

const missing = natsServerMissing('policy service approvals');

const ISS = 'https://idp.example';
const sarah = { iss: ISS, sub: 'sarah' };
const manager = { iss: ISS, sub: 'maria', groups: ['finance-managers'], roles: [] };
const bob = { iss: ISS, sub: 'bob', groups: ['sales'], roles: [] };
let digests = 0;

function held(tenant: string, overrides: Partial<RequestOf<typeof approvalRequestEndpoint>> = {}): RequestOf<typeof approvalRequestEndpoint> {
  return {
    tenant,
    gateway: 'finance-gw',
    tool: 'finance___approve_expense',
    target: 'finance',
    toolTitle: 'Approve expense',
    arguments: [{ name: 'amount', title: 'amount', value: '250' }],
    user: sarah,
    agent: 'expense-agent',
    approvers: [{ kind: 'group', name: 'finance-managers' }],
    digest: `digest-${++digests}-${'x'.repeat(30)}`,
    policy: { name: 'expenses', version: 'hash-1', determining: ['managers-approve'] },
    ttlSeconds: 900,
    ...overrides,
  };
}

describe.skipIf(missing)('approvals in the policy service, over NATS', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let resource: string;
  const events: { subject: string; data: Record<string, unknown> }[] = [];
  let subscription: Subscription;

  beforeAll(async () => {
    const port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp/acme/finance-gw`;
    h = await startSystem({ services: ['directory', 'authorizer', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}` } });
    idp = await startTestIdp();
    const key: JWK = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    subscription = h.nc.subscribe('mandate.evt.policy.>', { callback: (_e, msg: Msg) => void events.push({ subject: msg.subject, data: (msg.json<{ data: Record<string, unknown> }>()).data }) });
  }, 60_000);

  afterAll(async () => {
    subscription?.unsubscribe();
    await h?.stop();
    await idp?.stop();
  });

  const records = (action: string, approval: string) => h.audit.filter((r) => r.service === 'policy' && r.action === action && r.details?.['approval'] === approval);
  const eventually = async (check: () => void) => {
    for (let i = 0; ; i++) {
      try {
        return check();
      } catch (error) {
        if (i > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };

  it('a held call opens one request per digest while it is open, announced with its binding message and audited', async () => {
    const request = held('acme');
    const first = await h.bus.request(approvalRequestEndpoint, request);
    const again = await h.bus.request(approvalRequestEndpoint, request);
    expect(again.id).toBe(first.id);
    expect(first).toMatchObject({ state: 'requested', gateway: 'finance-gw', user: sarah, agent: 'expense-agent', digest: request.digest });
    expect(first.bindingMessage).toContain('Approve expense on finance for sarah by agent expense-agent: amount 250');
    expect(Date.parse(first.expiresAt) - Date.parse(first.requestedAt)).toBe(900_000);
    await eventually(() => expect(events.filter((e) => e.subject === 'mandate.evt.policy.approval-requested.acme' && e.data['id'] === first.id)).toHaveLength(1));
    await eventually(() => expect(records('approval-request', first.id)).toHaveLength(1));
    expect(await h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: request.digest })).toMatchObject({ consumed: false, state: 'requested' });
  });

  it('a manager approves; the identical call consumes it once, and the next one is held again with a new request', async () => {
    const request = held('acme');
    const opened = await h.bus.request(approvalRequestEndpoint, request);
    const approved = await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', comment: 'fine', approver: { ...manager, displayName: 'Maria' }, actor: 'consent' });
    expect(approved).toMatchObject({ state: 'approved', decidedBy: { sub: 'maria', displayName: 'Maria' }, comment: 'fine' });
    await eventually(() => expect(events.filter((e) => e.subject === 'mandate.evt.policy.approval-decided.acme' && e.data['id'] === opened.id)).toEqual([expect.objectContaining({ data: { id: opened.id, state: 'approved', digest: request.digest } })]));
    const used = await h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: request.digest });
    expect(used).toMatchObject({ consumed: true, approval: { id: opened.id, state: 'consumed' } });
    expect(await h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: request.digest })).toEqual({ consumed: false, state: 'none' });
    const next = await h.bus.request(approvalRequestEndpoint, request);
    expect(next.id).not.toBe(opened.id);
    expect(next.state).toBe('requested');
    await eventually(() => expect(records('approval-decide', opened.id)).toEqual([expect.objectContaining({ outcome: 'succeeded', actor: { user: { iss: ISS, sub: 'maria' } }, details: expect.objectContaining({ decision: 'approved', comment: 'fine' }) })]));
    await eventually(() => expect(records('approval-consume', opened.id)).toHaveLength(1));
    expect(await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'deny', approver: manager }))).toMatchObject({ code: 'conflict' });
  });

  it('two identical calls racing consume one approval once', async () => {
    const request = held('acme');
    const opened = await h.bus.request(approvalRequestEndpoint, request);
    await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approver: manager });
    const answers = await Promise.all(Array.from({ length: 6 }, () => h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: request.digest })));
    expect(answers.filter((a) => a.consumed)).toHaveLength(1);
    await eventually(() => expect(records('approval-consume', opened.id)).toHaveLength(1));
  });

  it('someone who is not an approver cannot decide (access_denied, audited as a refusal); the user themself only when the policy says so', async () => {
    const opened = await h.bus.request(approvalRequestEndpoint, held('acme'));
    expect(await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approver: bob }))).toMatchObject({ code: 'access_denied' });
    expect(await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approver: { ...sarah, groups: [], roles: [] } }))).toMatchObject({ code: 'access_denied' });
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: opened.id })).state).toBe('requested');
    await eventually(() => expect(records('approval-refuse', opened.id)).toHaveLength(2));
    expect(records('approval-refuse', opened.id)[0]).toMatchObject({ outcome: 'denied', reason: 'not_an_approver', actor: { user: { sub: 'bob' } } });
    const own = await h.bus.request(approvalRequestEndpoint, held('acme', { approvers: [{ kind: 'user' }] }));
    expect((await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: own.id, decision: 'approve', approver: { ...sarah, groups: [], roles: [] } })).state).toBe('approved');
  });

  it('a denied approval is never consumed', async () => {
    const request = held('acme');
    const opened = await h.bus.request(approvalRequestEndpoint, request);
    await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'deny', comment: 'no', approver: manager });
    expect(await h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: request.digest })).toMatchObject({ consumed: false, state: 'denied' });
    const next = await h.bus.request(approvalRequestEndpoint, request);
    expect(next.id).not.toBe(opened.id);
  });

  it("with approverToken: a manager's token for the gateway decides; a token of someone else, for another audience or none at all does not", async () => {
    // Sarah's call came through the gateway, so her token is from its IdP: the one whose groups count.
    const opened = await h.bus.request(approvalRequestEndpoint, held('acme', { user: { iss: idp.issuer, sub: 'sarah' } }));
    const token = (sub: string, groups: string[], audience = resource) => idp.userAccessToken({ sub, audience, claims: { groups, name: `${sub} (test)` } });
    const refuse = async (approverToken: string) => (await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approverToken }))).code;
    expect(await refuse(await token('bob', ['sales']))).toBe('access_denied');
    expect(await refuse(await token('maria', ['finance-managers'], 'https://elsewhere.example/mcp'))).toBe('access_denied');
    expect(await refuse('not-a-token')).toBe('access_denied');
    const approved = await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approverToken: await token('maria', ['finance-managers']) });
    expect(approved).toMatchObject({ state: 'approved', decidedBy: { iss: idp.issuer, sub: 'maria', displayName: 'maria (test)' } });
    await eventually(() => expect(records('approval-refuse', opened.id).map((r) => r.reason)).toEqual(['not_an_approver', 'approver_unverified', 'approver_unverified']));
    expect(JSON.stringify(h.audit)).not.toContain('eyJ');
  });

  it('lists newest first, filtered by state, gateway and who may decide; tenants see only their own', async () => {
    const older = await h.bus.request(approvalRequestEndpoint, held('globex'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const newer = await h.bus.request(approvalRequestEndpoint, held('globex', { approvers: [{ kind: 'role', name: 'cfo' }], gateway: 'travel-gw' }));
    const all = await h.bus.request(approvalListEndpoint, { tenant: 'globex' });
    expect(all.items.map((a) => a.id)).toEqual([newer.id, older.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'globex', gateway: 'travel-gw' })).items.map((a) => a.id)).toEqual([newer.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'globex', approver: manager })).items.map((a) => a.id)).toEqual([older.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'globex', approver: { ...bob, roles: ['cfo'] } })).items.map((a) => a.id)).toEqual([newer.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'globex', state: 'approved' })).items).toEqual([]);
    const paged = await h.bus.request(approvalListEndpoint, { tenant: 'globex', limit: 1 });
    expect(paged.items.map((a) => a.id)).toEqual([newer.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'globex', limit: 1, cursor: paged.nextCursor })).items.map((a) => a.id)).toEqual([older.id]);
    expect((await h.bus.request(approvalListEndpoint, { tenant: 'acme' })).items.map((a) => a.id)).not.toContain(older.id);
    expect((await failure(h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: older.id }))).code).toBe('not_found');
    expect(await h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: older.digest })).toEqual({ consumed: false, state: 'none' });
  });

  it('bad input changes nothing: an unknown id, both or neither of approver and approverToken, a bad digest', async () => {
    expect((await failure(h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: `apr_${'z'.repeat(30)}` }))).code).toBe('not_found');
    expect((await failure(h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: 'nope' }))).code).toBe('invalid_request');
    const opened = await h.bus.request(approvalRequestEndpoint, held('acme'));
    expect((await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve' }))).code).toBe('invalid_request');
    expect((await failure(h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: opened.id, decision: 'approve', approver: manager, approverToken: 'x' }))).code).toBe('invalid_request');
    expect((await failure(h.bus.request(approvalConsumeEndpoint, { tenant: 'acme', digest: 'a*b' }))).code).toBe('invalid_request');
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: opened.id })).state).toBe('requested');
  });

  it('expiry, with a frozen clock: past expiresAt a request or an unused approval is expired when read, announced and audited once, never consumed', async () => {
    const clock = new FrozenClock(Date.now());
    const approvals = await Approvals.assemble({ store: new JetStreamKvStore(h.nc), publisher: new JetStreamPublisher(h.nc), bus: h.bus, now: clock.now });
    const [request, consume, get, , decide] = approvals.useCases;
    const tenant = 'acme' as TenantId;
    const { tenant: _t, ...asked } = held('acme', { ttlSeconds: 60 });
    const waiting = await request.request(tenant, asked);
    const { tenant: _u, ...askedToo } = held('acme', { ttlSeconds: 60 });
    const approved = await request.request(tenant, askedToo);
    await decide.decide(tenant, { id: approved.id, decision: 'approve', approver: manager, actor: undefined });
    clock.advance(59_999);
    expect((await get.get(tenant, waiting.id)).state).toBe('requested');
    clock.advance(1);
    expect((await get.get(tenant, waiting.id)).state).toBe('expired');
    expect(await consume.consume(tenant, approved.digest)).toMatchObject({ consumed: false, state: 'expired' });
    expect((await failure(decide.decide(tenant, { id: waiting.id, decision: 'approve', approver: manager, actor: undefined }))).code).toBe('conflict');
    // The service's own replica reads the same record: expired there too.
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: approved.id })).state).toBe('expired');
    await eventually(() => expect([...records('approval-expire', waiting.id), ...records('approval-expire', approved.id)]).toHaveLength(2));
    await eventually(() => expect(events.filter((e) => e.subject === 'mandate.evt.policy.approval-decided.acme' && e.data['state'] === 'expired' && [waiting.id, approved.id].includes(e.data['id'] as string))).toHaveLength(2));
    const renewed = await request.request(tenant, asked);
    expect(renewed.id).not.toBe(waiting.id);
  });

  it('the expiry sweep, with a frozen clock: an approval nobody reads again is expired at its time, audited and announced once; one used meanwhile is left as it is', async () => {
    const clock = new FrozenClock(Date.now() + 3_600_000);
    const approvals = await Approvals.assemble({ store: new JetStreamKvStore(h.nc), publisher: new JetStreamPublisher(h.nc), bus: h.bus, now: clock.now });
    const [request, consume, , , decide] = approvals.useCases;
    const tenant = 'acme' as TenantId;
    const { tenant: _t, ...forgotten } = held('acme', { ttlSeconds: 30 });
    const unread = await request.request(tenant, forgotten);
    const { tenant: _u, ...used } = held('acme', { ttlSeconds: 30 });
    const consumed = await request.request(tenant, used);
    await decide.decide(tenant, { id: consumed.id, decision: 'approve', approver: manager, actor: undefined });
    expect(await consume.consume(tenant, consumed.digest)).toMatchObject({ consumed: true });
    const stateOf = async (id: string) => (await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id })).state;

    clock.advance(29_000);
    await approvals.expirySweep.sweep();
    expect(records('approval-expire', unread.id)).toHaveLength(0);
    clock.advance(1_000);
    expect(await approvals.expirySweep.sweep()).toBeGreaterThanOrEqual(2);
    await eventually(() => expect(records('approval-expire', unread.id)).toHaveLength(1));
    await eventually(() => expect(events.filter((e) => e.subject === 'mandate.evt.policy.approval-decided.acme' && e.data['id'] === unread.id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ state: 'expired' }) })]));
    // Read through the service's own replica afterwards: expired, never a second record; the used one stays consumed.
    expect(await stateOf(unread.id)).toBe('expired');
    expect(await stateOf(consumed.id)).toBe('consumed');
    expect(records('approval-expire', consumed.id)).toHaveLength(0);
    // Each due entry is handled once: the next sweep finds nothing of these two.
    clock.advance(1_000);
    await approvals.expirySweep.sweep();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(records('approval-expire', unread.id)).toHaveLength(1);
  });

  it('an expiry whose audit record cannot be written at first is announced by a later sweep (a minute later, not every sweep); its entry stays until then', async () => {
    const clock = new FrozenClock(Date.now() + 7_200_000);
    const publisher = new ExpiryAuditFails(h.nc);
    const approvals = await Approvals.assemble({ store: new JetStreamKvStore(h.nc), publisher, bus: h.bus, now: clock.now });
    const [request, , get] = approvals.useCases;
    const tenant = 'acme' as TenantId;
    const { tenant: _t, ...lapsing } = held('acme', { ttlSeconds: 30 });
    const opened = await request.request(tenant, lapsing);
    clock.advance(30_000);
    // The bus refuses the audit record: the read still answers expired, and nothing is announced yet.
    const index = await ApprovalRecords.open(new JetStreamKvStore(h.nc));
    const entryKept = async () => (await index.dueExpiries(clock.now() + 3_600_000, 500)).some((entry) => entry.approval === opened.id);
    const decided = () => events.filter((e) => e.subject === 'mandate.evt.policy.approval-decided.acme' && e.data['id'] === opened.id);
    publisher.failing = true;
    expect((await get.get(tenant, opened.id)).state).toBe('expired');
    await approvals.expirySweep.sweep();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(records('approval-expire', opened.id)).toHaveLength(0);
    expect(decided()).toHaveLength(0);
    expect(await entryKept()).toBe(true);
    // Postponed, not retried on every sweep: one more now does nothing.
    await approvals.expirySweep.sweep();
    expect(records('approval-expire', opened.id)).toHaveLength(0);
    // The bus is back: the sweep a minute later announces it, once, and drops the entry.
    publisher.failing = false;
    await approvals.expirySweep.sweep();
    expect(records('approval-expire', opened.id)).toHaveLength(0);
    clock.advance(60_000);
    await approvals.expirySweep.sweep();
    await eventually(() => expect(records('approval-expire', opened.id)).toHaveLength(1));
    await eventually(() => expect(decided()).toEqual([expect.objectContaining({ data: expect.objectContaining({ state: 'expired' }) })]));
    expect(await entryKept()).toBe(false);
    expect((await get.get(tenant, opened.id)).state).toBe('expired');
    await approvals.expirySweep.sweep();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(records('approval-expire', opened.id)).toHaveLength(1);
  });
});

/** The real publisher, with the approval-expire audit record refused while `failing` (the bus away for that write). */
class ExpiryAuditFails extends JetStreamPublisher {
  failing = false;

  override auditSink<A extends string>(catalog: AuditCatalog<A>): AuditSink<A> {
    const sink = super.auditSink(catalog);
    return {
      audit: async (entry) => {
        if (this.failing && entry.action === 'approval-expire') throw new MandateError('unavailable', 'the bus is away (test)');
        return sink.audit(entry);
      },
    };
  }
}
