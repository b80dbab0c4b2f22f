import { randomInt } from 'node:crypto';

/**
 * The revision a new record starts at. A document's revision counts its own writes only (a
 * shared sequence would tell one tenant how much another writes), and a recreated record must
 * not get a revision an earlier incarnation had, or a stale reader's compare-and-swap would
 * succeed on the new one (ABA): a random start makes a repeat vanishingly unlikely.
 */
export function initialRevision(): number {
  return randomInt(1, 2 ** 47);
}
