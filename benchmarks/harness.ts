// Interleaved micro-benchmarking: every round runs every case once, in a shuffled order, so that noise from
// this shared machine spreads over all cases alike; ratios are taken within a round, then their median.

export interface Case {
  readonly name: string;
  /** One operation; its result is kept in a sink so the work cannot be optimised away. */
  readonly run: () => unknown;
  readonly async?: boolean;
  /** Runs before each batch of this case, untimed; returns what undoes it after the batch. */
  readonly setup?: () => () => void;
}

export interface Measurement {
  readonly name: string;
  /** Nanoseconds per operation, one entry per round. */
  readonly samples: number[];
  readonly median: number;
  readonly p25: number;
  readonly p75: number;
}

export interface HarnessOptions {
  readonly rounds: number;
  /** Milliseconds one batch of one case should take. */
  readonly batchMs: number;
}

let sink = 0;

function keep(value: unknown): void {
  if (typeof value === 'string') sink += value.length;
  else if (value !== undefined && value !== null) sink += 1;
}

async function batch(item: Case, iterations: number): Promise<number> {
  const teardown = item.setup?.();
  try {
    const start = process.hrtime.bigint();
    if (item.async === true) {
      for (let i = 0; i < iterations; i++) keep(await item.run());
    } else {
      for (let i = 0; i < iterations; i++) keep(item.run());
    }
    return Number(process.hrtime.bigint() - start);
  } finally {
    teardown?.();
  }
}

async function calibrate(item: Case, batchMs: number): Promise<number> {
  let iterations = 1;
  for (;;) {
    const elapsed = await batch(item, iterations);
    if (elapsed >= batchMs * 1e6 || iterations >= 1 << 24) {
      return Math.max(1, Math.round((iterations * batchMs * 1e6) / Math.max(elapsed, 1)));
    }
    iterations *= 4;
  }
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return (sorted[low] as number) + ((sorted[high] as number) - (sorted[low] as number)) * (at - low);
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

export async function measure(
  cases: readonly Case[],
  options: HarnessOptions,
  progress?: (round: number) => void,
): Promise<Map<string, Measurement>> {
  const iterations = new Map<string, number>();
  for (const item of cases) iterations.set(item.name, await calibrate(item, options.batchMs));
  const samples = new Map<string, number[]>(cases.map((item) => [item.name, []]));
  let seed = 7;
  const order = [...cases];
  for (let round = 0; round < options.rounds; round++) {
    for (let i = order.length - 1; i > 0; i--) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j] as Case, order[i] as Case];
    }
    for (const item of order) {
      const count = iterations.get(item.name) as number;
      samples.get(item.name)?.push((await batch(item, count)) / count);
    }
    progress?.(round);
  }
  if (sink === -1) console.log('unreachable');
  const results = new Map<string, Measurement>();
  for (const [name, values] of samples) {
    const sorted = [...values].sort((a, b) => a - b);
    results.set(name, { name, samples: values, median: quantile(sorted, 0.5), p25: quantile(sorted, 0.25), p75: quantile(sorted, 0.75) });
  }
  return results;
}

/** Median over rounds of a / b, both measured in the same round. */
export function ratio(results: Map<string, Measurement>, a: string, b: string): number {
  const left = results.get(a)?.samples ?? [];
  const right = results.get(b)?.samples ?? [];
  return median(left.map((value, i) => value / (right[i] as number)));
}
