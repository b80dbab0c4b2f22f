import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { MandateError, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { GatewayRecords, type TargetDocument } from '../store/repositories.js';
import { RESERVATION_GRACE_MS, ToolNameReservations } from './tool-name-reservations.js';

const missing = natsServerMissing('tool name reservations on JetStream KV');
const TENANT = 'acme' as TenantId;

function target(name: string, tools: string[]): TargetDocument {
  return { name, gateway: 'gw', source: { kind: 'mcp', url: 'http://127.0.0.1:1/mcp' }, toolNames: 'as-given', bindings: [], timeoutMs: 1_000, tools: tools.map((tool) => ({ name: tool, inputSchema: { type: 'object' } })), syncedAt: new Date(0).toISOString() } as unknown as TargetDocument;
}

async function refusal(promise: Promise<unknown>): Promise<MandateError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return error;
}

describe.skipIf(missing)('ToolNameReservations: one target per as-given name at a gateway', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let records: GatewayRecords;
  let nowMs = Date.UTC(2026, 11, 7, 9);
  const reservations = () => new ToolNameReservations(records, () => nowMs);

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    records = await GatewayRecords.open(new JetStreamKvStore(nc, { clock: () => nowMs }));
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('of two targets reserving a name at the same moment, one gets it; the other is refused naming it, and keeps nothing it reserved', async () => {
    const names = reservations();
    const outcomes = await Promise.allSettled([names.reserve(TENANT, 'gw', 'left', ['pay', 'left_only']), names.reserve(TENANT, 'gw', 'right', ['pay', 'right_only'])]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const lost = outcomes.find((o) => o.status === 'rejected')!.reason as MandateError;
    const winner = outcomes[0]!.status === 'fulfilled' ? 'left' : 'right';
    const loser = winner === 'left' ? 'right' : 'left';
    expect(lost.code).toBe('conflict');
    expect(lost.message).toContain(`pay (target ${winner} already has a tool of this name at the gateway)`);
    expect((await records.reservation(TENANT, 'gw', 'pay'))?.value.target).toBe(winner);
    expect(await records.reservation(TENANT, 'gw', `${loser}_only`)).toBeUndefined();
    // Reserving again what one holds renews it; the loser holds nothing to release; the winner's release gives it up, and then another may have it.
    await names.reserve(TENANT, 'gw', winner, ['pay']);
    expect(await names.holdings(TENANT, 'gw', loser, ['pay'])).toEqual([]);
    await names.release(TENANT, 'gw', await names.holdings(TENANT, 'gw', winner, ['pay', `${winner}_only`]));
    expect(await records.reservation(TENANT, 'gw', 'pay')).toBeUndefined();
    await names.reserve(TENANT, 'gw', loser, ['pay']);
    expect((await records.reservation(TENANT, 'gw', 'pay'))?.value.target).toBe(loser);
  });

  it('a release deletes only what its change saw: a reservation the same target renewed meanwhile (a sync right after, the target added again) stays', async () => {
    const names = reservations();
    await names.reserve(TENANT, 'gw', 'busy', ['renewed']);
    const seen = await names.holdings(TENANT, 'gw', 'busy', ['renewed']);
    await names.reserve(TENANT, 'gw', 'busy', ['renewed']);
    await names.release(TENANT, 'gw', seen);
    expect((await records.reservation(TENANT, 'gw', 'renewed'))?.value.target).toBe('busy');
  });

  it("renews a target's own old reservation, so a newcomer cannot take it over as stale while the target is being written", async () => {
    const names = reservations();
    await names.reserve(TENANT, 'gw', 'slow', ['own']);
    nowMs += 5 * RESERVATION_GRACE_MS;
    // The target reserves its names again before writing itself (it does not show them yet).
    await names.reserve(TENANT, 'gw', 'slow', ['own']);
    expect((await refusal(names.reserve(TENANT, 'gw', 'newcomer', ['own']))).message).toContain('own (target slow already has a tool of this name at the gateway)');
  });

  it('a reservation left behind is taken over once past its grace, if its target does not show the name; never before, never from a target that does', async () => {
    const names = reservations();
    await names.reserve(TENANT, 'gw', 'crashed', ['orphan']);
    nowMs += RESERVATION_GRACE_MS - 1_000;
    expect((await refusal(names.reserve(TENANT, 'gw', 'newcomer', ['orphan']))).code).toBe('conflict');
    nowMs += 2_000;
    await names.reserve(TENANT, 'gw', 'newcomer', ['orphan']);
    expect((await records.reservation(TENANT, 'gw', 'orphan'))?.value.target).toBe('newcomer');

    await records.createTarget(TENANT, target('showing', ['kept']));
    await names.reserve(TENANT, 'gw', 'showing', ['kept']);
    nowMs += 10 * RESERVATION_GRACE_MS;
    const refused = await refusal(names.reserve(TENANT, 'gw', 'newcomer', ['kept']));
    expect(refused.message).toContain('kept (target showing already has a tool of this name at the gateway)');
  });

  it("releases what is left at a gateway being deleted (a crash's reservation included), and nothing of another gateway's", async () => {
    const names = reservations();
    await names.reserve(TENANT, 'doomed', 'crashed', ['orphan', 'another']);
    await names.reserve(TENANT, 'doomed-not', 'kept', ['orphan']);
    await names.releaseAllOf(TENANT, 'doomed');
    expect(await records.reservationsOf(TENANT, 'doomed')).toEqual([]);
    expect((await records.reservationsOf(TENANT, 'doomed-not')).map((r) => r.value.target)).toEqual(['kept']);
  });

  it('holds tool names no document id could (a slash, spaces)', async () => {
    const names = reservations();
    await names.reserve(TENANT, 'gw', 'odd', ['files/read all']);
    expect((await records.reservation(TENANT, 'gw', 'files/read all'))?.value).toMatchObject({ name: 'files/read all', target: 'odd' });
  });
});
