import { describe, expect, it } from 'vitest';
import type { ApprovalState, ApprovalView, ResponseOf, approvalConsumeEndpoint } from '@mandate/contracts';
import { FrozenClock } from '@mandate/store/testing';
import { ApprovalDecisions } from './approval-decisions.js';
import type { AttachedPolicy, LoadedGateway } from './gateway-registry.js';
import { CallAbandoned, HeldCalls, type HeldCall } from './held-calls.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';

type ConsumeAnswer = ResponseOf<typeof approvalConsumeEndpoint>;

const TEN_MINUTES = 10 * 60_000;

function view(state: ApprovalState, clock: FrozenClock, approvers: ApprovalView['approvers'] = [{ kind: 'group', name: 'finance-managers' }]): ApprovalView {
  return {
    tenant: 'acme',
    id: 'apr_1',
    state,
    gateway: 'finance-gw',
    tool: 'finance___approve_expense',
    target: 'finance',
    toolTitle: 'approve_expense',
    arguments: [{ name: 'amount', title: 'amount', value: '250' }],
    user: { iss: 'https://idp.example', sub: 'sarah' },
    approvers,
    bindingMessage: 'approve_expense on finance for sarah: amount 250',
    digest: 'digest',
    policy: { name: 'expenses', version: 'hash', determining: ['managers-approve'] },
    requestedAt: new Date(clock.now()).toISOString(),
    expiresAt: new Date(clock.now() + TEN_MINUTES).toISOString(),
  } as ApprovalView;
}

/** Decisions whose waits pass on the frozen clock at once; one decision comes `decideAfterMs` into the waiting, if given. */
class ClockedDecisions extends ApprovalDecisions {
  waits = 0;
  constructor(
    private readonly clock: FrozenClock,
    private readonly decideAfterMs?: number,
  ) {
    super();
  }

  #waited = 0;

  #advance(ms: number): void {
    this.#waited += ms;
    this.clock.advance(ms);
  }

  override next(): { decided: (timeoutMs: number) => Promise<boolean>; cancel: () => void } {
    return {
      decided: async (timeoutMs) => {
        this.waits += 1;
        const untilDecision = this.decideAfterMs === undefined ? Infinity : this.decideAfterMs - this.#waited;
        if (untilDecision >= 0 && untilDecision <= timeoutMs) {
          this.#advance(untilDecision);
          return true;
        }
        this.#advance(timeoutMs);
        return false;
      },
      cancel: () => undefined,
    };
  }
}

function setUp(options: { waitMs: number; answers: (clock: FrozenClock, looks: number) => ConsumeAnswer; decideAfterMs?: number; approvers?: ApprovalView['approvers'] }) {
  const clock = new FrozenClock(Date.parse('2026-12-02T09:00:00Z'));
  const decisions = new ClockedDecisions(clock, options.decideAfterMs);
  let looks = 0;
  const requested: Parameters<HeldCalls['admit']>[0]['arguments'][] = [];
  const digests: string[] = [];
  const held = new HeldCalls(
    {
      consume: async (_tenant, digest) => {
        digests.push(digest);
        return options.answers(clock, ++looks);
      },
      request: async (request) => {
        requested.push(request.arguments as never);
        return view('requested', clock, options.approvers);
      },
      decisions,
    },
    { consentPublicUrl: 'https://consent.example', waitMs: options.waitMs, progressEveryMs: 5_000, now: clock.now },
  );
  const progress: { elapsedMs: number; message: string }[] = [];
  const call = (extra: Partial<HeldCall> = {}): HeldCall => ({
    gateway: { tenant: 'acme', name: 'finance-gw', targets: new Map([['finance', { name: 'finance', addedAt: '2026-12-01T10:00:00.000Z' }]]) } as unknown as LoadedGateway,
    principal: { user: { iss: 'https://idp.example', sub: 'sarah' }, clientId: 'expense-agent' } as Principal,
    tool: { name: 'finance___approve_expense', tool: 'approve_expense', target: 'finance', inputSchema: { type: 'object' } } as unknown as CatalogTool,
    arguments: { amount: 250 },
    requirement: { approvers: options.approvers ?? [{ kind: 'group', name: 'finance-managers' }], ttlSeconds: 600 },
    policy: { name: 'expenses', hash: 'hash' } as AttachedPolicy,
    determining: ['managers-approve'],
    progress: async (elapsedMs, _total, message) => void progress.push({ elapsedMs, message }),
    ...extra,
  });
  return { clock, decisions, held, call, progress, requested, digests, looks: () => looks };
}

describe('HeldCalls, with a frozen clock', () => {
  it("binds the approval to the target the call goes to: the same call to a target added again (or another of the tool's name) looks for another approval", async () => {
    const { held, call, digests } = setUp({ waitMs: 0, answers: (c) => ({ consumed: false, state: 'requested', approval: view('requested', c) }) });
    const again = (addedAt: string, name = 'finance') => ({ tenant: 'acme', name: 'finance-gw', targets: new Map([[name, { name, addedAt }]]) }) as unknown as LoadedGateway;
    await held.admit(call());
    await held.admit(call());
    await held.admit(call({ gateway: again('2026-12-07T09:00:00.000Z') }));
    expect(digests[1]).toBe(digests[0]);
    expect(digests.at(-1)).not.toBe(digests[0]);
  });


  it('waits to its bound and no longer, telling the client every 5 s, then looks once more and answers that the call is held', async () => {
    const { held, call, progress, looks, clock } = setUp({ waitMs: 30_000, answers: (c) => ({ consumed: false, state: 'requested', approval: view('requested', c) }) });
    const started = clock.now();
    const admission = await held.admit(call());
    expect(admission).toMatchObject({ kind: 'held', state: 'requested' });
    expect(clock.now() - started).toBe(30_000);
    expect(progress.map((p) => p.elapsedMs)).toEqual([0, 5_000, 10_000, 15_000, 20_000, 25_000]);
    expect(progress[0]!.message).toContain('a member of group finance-managers');
    // The first look, the one in the wait, and the last one at the bound.
    expect(looks()).toBe(3);
  });

  it('an approval that expires while the call waits: the call answers that it expired, and proceeds with nothing', async () => {
    const { held, call } = setUp({
      waitMs: 30_000,
      decideAfterMs: 7_000,
      answers: (c, looks) => (looks < 3 ? { consumed: false, state: 'requested', approval: view('requested', c) } : { consumed: false, state: 'expired', approval: view('expired', c) }),
    });
    const admission = await held.admit(call());
    expect(admission).toMatchObject({ kind: 'held', state: 'expired' });
    expect(admission.kind === 'held' && admission.message).toContain('request apr_1 for finance___approve_expense was expired; calling again asks again');
  });

  it('a decision wakes the wait: approved meanwhile, the call proceeds with the approval it used', async () => {
    const { held, call, clock } = setUp({
      waitMs: 30_000,
      decideAfterMs: 12_000,
      answers: (c, looks) => (looks < 3 ? { consumed: false, state: 'requested', approval: view('requested', c) } : { consumed: true, approval: view('consumed', c) }),
    });
    const started = clock.now();
    expect(await held.admit(call())).toMatchObject({ kind: 'approved', approval: { id: 'apr_1' } });
    expect(clock.now() - started).toBe(12_000);
  });

  it('a client that gives up ends the wait at once, and nothing is used after', async () => {
    const controller = new AbortController();
    const { held, call, looks, decisions } = setUp({ waitMs: 300_000, answers: (c) => ({ consumed: false, state: 'requested', approval: view('requested', c) }) });
    const admission = held.admit(call({ signal: controller.signal, progress: async () => controller.abort() }));
    expect(await admission).toMatchObject({ kind: 'held', state: 'requested' });
    // Two looks (before and in the wait); none after the client went away, and no waiting past its first progress.
    expect(looks()).toBe(2);
    expect(decisions.waits).toBeLessThanOrEqual(1);
  });

  it('a client gone before the call is admitted uses no approval and opens no request', async () => {
    const controller = new AbortController();
    controller.abort();
    const { held, call, looks, requested } = setUp({ waitMs: 30_000, answers: (c) => ({ consumed: true, approval: view('consumed', c) }) });
    await expect(held.admit(call({ signal: controller.signal }))).rejects.toBeInstanceOf(CallAbandoned);
    expect(looks()).toBe(0);
    // Gone after the first look found nothing: no request is opened for it.
    const later = new AbortController();
    const second = setUp({ waitMs: 30_000, answers: (c) => (later.abort(), { consumed: false, state: 'none', approval: view('requested', c) }) as ConsumeAnswer });
    await expect(second.held.admit(second.call({ signal: later.signal }))).rejects.toBeInstanceOf(CallAbandoned);
    expect(second.requested).toHaveLength(0);
    expect(requested).toHaveLength(0);
  });

  it('a wait that ends leaves no listener on the client signal', async () => {
    const signal = new AbortController().signal;
    const listeners = { added: 0, removed: 0 };
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof add>) => (listeners.added++, add(...args))) as typeof add;
    signal.removeEventListener = ((...args: Parameters<typeof remove>) => (listeners.removed++, remove(...args))) as typeof remove;
    const { held, call } = setUp({ waitMs: 30_000, decideAfterMs: 7_000, answers: (c, looks) => (looks < 3 ? { consumed: false, state: 'requested', approval: view('requested', c) } : { consumed: true, approval: view('consumed', c) }) });
    expect(await held.admit(call({ signal }))).toMatchObject({ kind: 'approved' });
    expect(listeners).toEqual({ added: 1, removed: 1 });
  });

  it('a wait given up mid-way settles its pending decision wait, timer and all', async () => {
    const decisions = new ApprovalDecisions();
    const next = decisions.next('acme', 'apr_1');
    const started = performance.now();
    const waiting = next.decided(60_000);
    next.cancel();
    await waiting;
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('a user who approves their own call, with a client that takes URL elicitation, is not kept waiting: the page at once', async () => {
    const { held, call, progress, looks } = setUp({ waitMs: 30_000, approvers: [{ kind: 'user' }], answers: (c) => ({ consumed: false, state: 'requested', approval: view('requested', c, [{ kind: 'user' }]) }) });
    const admission = await held.admit(call({ urlElicitation: true }));
    expect(admission).toMatchObject({ kind: 'held', state: 'requested', userApproves: true, url: 'https://consent.example/approvals/apr_1?tenant=acme' });
    expect([looks(), progress.length]).toEqual([1, 0]);
    // Without URL elicitation the same call waits as configured.
    const waited = await held.admit(call());
    expect(waited.kind).toBe('held');
    expect(progress.length).toBeGreaterThan(0);
  });

  it('tells the approver what the request leaves out: a long value is marked shortened, arguments past the limit are counted', async () => {
    const { held, call, requested } = setUp({ waitMs: 0, answers: (c) => ({ consumed: false, state: 'requested', approval: view('requested', c) }) });
    const args: Record<string, unknown> = { memo: 'x'.repeat(5_000) };
    for (let i = 0; i < 299; i++) args[`line${i}`] = i;
    await held.admit(call({ arguments: args }));
    const shown = requested[0] as unknown as { name: string; title: string; value: string }[];
    expect(shown).toHaveLength(256);
    expect(shown[0]!.value).toMatch(/… \(5000 characters, shortened here\)$/);
    expect(shown[0]!.value.length).toBeLessThanOrEqual(1024);
    expect(shown.at(-1)).toEqual({ name: '…', title: 'Not shown', value: '45 more arguments, bound by this approval as well' });
  });
});
