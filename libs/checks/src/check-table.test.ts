import { describe, expect, it } from 'vitest';
import { runChecks, type Check } from './check-table.js';

class Refusal extends Error {
  constructor(readonly reason: 'too_long' | 'empty' | 'forbidden') {
    super(reason);
  }
}
const reasonOf = (error: unknown) => (error instanceof Refusal ? error.reason : undefined);

interface Ctx {
  readonly text: string;
  seen: string[];
}
type TextCheck = Check<Ctx, Refusal['reason']>;

const check = (name: string, reason: Refusal['reason'], refuses: (text: string) => boolean): TextCheck => ({
  name,
  reasons: [reason],
  run: (ctx) => {
    ctx.seen.push(name);
    if (refuses(ctx.text)) throw new Refusal(reason);
  },
});

const TABLE: readonly TextCheck[] = [
  check('length', 'too_long', (text) => text.length > 5),
  check('present', 'empty', (text) => text.length === 0),
  { name: 'words', reasons: ['forbidden'], run: async (ctx) => check('words', 'forbidden', (text) => text === 'nope').run(ctx) },
];

describe('runChecks', () => {
  it('runs every check in order and passes when none fails', async () => {
    const ctx: Ctx = { text: 'fine', seen: [] };
    expect(await runChecks(TABLE, ctx, reasonOf)).toBeUndefined();
    expect(ctx.seen).toEqual(['length', 'present', 'words']);
  });

  it('stops at the first failure and names the check, its reason and the error', async () => {
    const ctx: Ctx = { text: '', seen: [] };
    const failure = await runChecks(TABLE, ctx, reasonOf);
    expect(failure).toMatchObject({ check: 'present', reason: 'empty' });
    expect(failure?.error).toBeInstanceOf(Refusal);
    expect(ctx.seen).toEqual(['length', 'present']);
  });

  it('awaits an asynchronous check', async () => {
    expect(await runChecks(TABLE, { text: 'nope', seen: [] }, reasonOf)).toMatchObject({ check: 'words', reason: 'forbidden' });
  });

  it('rethrows an error that is not a refusal instead of turning it into one', async () => {
    const broken: TextCheck = {
      name: 'broken',
      reasons: ['empty'],
      run: () => {
        throw new TypeError('bug');
      },
    };
    await expect(runChecks([broken, ...TABLE], { text: '', seen: [] }, reasonOf)).rejects.toThrow(TypeError);
  });
});
