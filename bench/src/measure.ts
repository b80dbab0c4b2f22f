/** One way of making a request; each bench row supplies one. */
export type RequestFn = () => Promise<void>;

export interface Measurement {
  medianUs: number;
  p99Us: number;
  requestsPerSecond: number;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sequential latency: one request at a time, so the number is the round trip itself. */
export async function latency(request: RequestFn, count: number): Promise<{ medianUs: number; p99Us: number }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = performance.now();
    await request();
    samples.push((performance.now() - started) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { medianUs: percentile(samples, 50), p99Us: percentile(samples, 99) };
}

/** `count` things per how many seconds `work` takes. */
export async function rate(count: number, work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return count / ((performance.now() - started) / 1000);
}

/** Throughput with `concurrency` requests always outstanding. */
export async function throughput(request: RequestFn, total: number, concurrency: number): Promise<number> {
  let issued = 0;
  const worker = async () => {
    while (issued < total) {
      issued += 1;
      await request();
    }
  };
  return rate(total, () => Promise.all(Array.from({ length: concurrency }, worker)));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Each row's latency (`latencyCount` requests) and throughput (`total` at `concurrency`) in
 * interleaved rounds, so the machine's slow and fast moments fall on every row alike; medians
 * across rounds. First an untimed warm-up per row (JIT, connections). `label` names a round on stderr.
 * A row with `latencyOnly` is measured for latency alone (its own `latencyCount` if it has one,
 * warmed up one request at a time); its `requestsPerSecond` is 0.
 *
 * Within a round every row's latency is measured before any throughput, and the order of the rows
 * is reversed every other round: a latency sample taken right after a burst at concurrency pays
 * for that burst's garbage, and it would otherwise always be the same row's sample.
 */
export async function measureInRounds<Row extends { request: RequestFn; latencyOnly?: boolean; latencyCount?: number }>(
  label: string,
  rows: Row[],
  options: { rounds: number; warmup: { total: number; concurrency: number }; latencyCount: number; total: number; concurrency: number },
): Promise<(Row & Measurement & { roundMediansUs: number[] })[]> {
  const samples = rows.map(() => ({ latencies: [] as { medianUs: number; p99Us: number }[], rates: [] as number[] }));
  const latencyCount = (row: Row) => row.latencyCount ?? options.latencyCount;
  for (const row of rows) {
    if (row.latencyOnly) await latency(row.request, Math.min(options.warmup.total, latencyCount(row)));
    else await throughput(row.request, options.warmup.total, options.warmup.concurrency);
  }
  for (let round = 1; round <= options.rounds; round += 1) {
    process.stderr.write(`• ${label} ${round}/${options.rounds}\n`);
    const order = [...rows.entries()];
    if (round % 2 === 0) order.reverse();
    for (const [i, row] of order) samples[i]!.latencies.push(await latency(row.request, latencyCount(row)));
    for (const [i, row] of order) if (!row.latencyOnly) samples[i]!.rates.push(await throughput(row.request, options.total, options.concurrency));
  }
  return rows.map((row, i) => ({
    ...row,
    medianUs: median(samples[i]!.latencies.map((l) => l.medianUs)),
    p99Us: median(samples[i]!.latencies.map((l) => l.p99Us)),
    requestsPerSecond: row.latencyOnly ? 0 : median(samples[i]!.rates),
    roundMediansUs: samples[i]!.latencies.map((l) => l.medianUs),
  }));
}

/** What `row` adds to `baseline`'s median latency: the median of the rounds' differences, each taken within one round. */
export function addedMedianUs(row: { roundMediansUs: number[] }, baseline: { roundMediansUs: number[] }): number {
  return median(row.roundMediansUs.map((us, round) => us - baseline.roundMediansUs[round]!));
}
