import { describe, expect, it } from 'vitest';
import { SingleFlight } from './single-flight.js';

describe('SingleFlight', () => {
  it('gives concurrent callers of one key one run, other keys their own', async () => {
    const flights = new SingleFlight<string>();
    let runs = 0;
    const work = (value: string) => async () => {
      runs += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return value;
    };
    const results = await Promise.all([flights.run('a', work('first')), flights.run('a', work('second')), flights.run('b', work('other'))]);
    expect(results).toEqual(['first', 'first', 'other']);
    expect(runs).toBe(2);
  });

  it('runs again once the flight has landed, also after a failure', async () => {
    const flights = new SingleFlight<number>();
    await expect(flights.run('a', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await flights.run('a', async () => 2)).toBe(2);
  });
});
