import { timingSafeEqual } from 'node:crypto';

/** Whether two strings (tokens, hashes) are equal, in time that does not tell how much of them matched. */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
