/** One way of making a request; each bench row supplies one. */
export type RequestFn = () => Promise<void>;

export interface Measurement {
  medianUs: number;
  p99Us: number;
  requestsPerSecond: number;
}

function percentile(sorted: number[], p: number): number {
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

/** Throughput with `concurrency` requests always outstanding. */
export async function throughput(request: RequestFn, total: number, concurrency: number): Promise<number> {
  let issued = 0;
  const started = performance.now();
  const worker = async () => {
    while (issued < total) {
      issued += 1;
      await request();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((performance.now() - started) / 1000);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
