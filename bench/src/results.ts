// What one implementation measured on one case, as our worker and the
// PyTorch baseline both report it (the baseline prints the same JSON shape).

/** Repeated measurements of one metric and their median. */
export interface MetricSamples {
  readonly median: number;
  readonly samples: readonly number[];
}

/** One implementation's figures on one case. */
export interface ImplementationResult {
  /** Which side: ours or the PyTorch baseline. */
  readonly implementation: 'ours' | 'pytorch';
  /** One line naming what ran the math, e.g. "tfjs wasm+native (avx512f, 2 threads)". */
  readonly backend: string;
  /** Threads of the heavy kernels. */
  readonly threads: number;
  /** PyTorch only: the BLAS libraries its process loaded, relative to /usr/lib/x86_64-linux-gnu. */
  readonly blas?: readonly string[];
  /**
   * By metric name: train_step_ms, score_tokens_per_s, generate_b<N>_tokens_per_s,
   * prefill_ms, peak_rss_bytes, peak_tensor_bytes (ours: live tfjs tensor bytes);
   * ours with the native addon, train_outside_native_ms (the part of each
   * training step spent outside its calls); train_varied_step_ms (the step on
   * varied lengths: ours packed, PyTorch padded) and ours only
   * train_varied_padded_step_ms (ours on one right-padded row per sequence).
   */
  readonly metrics: Readonly<Record<string, MetricSamples>>;
}

/** The median of `values` (mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Samples and their median. */
export function samplesOf(values: readonly number[]): MetricSamples {
  return { median: median(values), samples: [...values] };
}

/** The metric name of generation throughput at one batch size. */
export function generateMetric(batch: number): string {
  return `generate_b${batch}_tokens_per_s`;
}

/**
 * One implementation's results of several rounds on one case as one result:
 * the timed samples of every round pooled (their median over all), the peak
 * memory metrics (peak_*) the largest of the rounds.
 */
export function poolRounds(rounds: readonly ImplementationResult[]): ImplementationResult {
  if (rounds.length === 0) throw new Error('poolRounds: no rounds');
  const metrics: Record<string, MetricSamples> = {};
  for (const name of Object.keys(rounds[0].metrics)) {
    const each = rounds.map((round) => round.metrics[name]).filter((m): m is MetricSamples => m !== undefined);
    metrics[name] = name.startsWith('peak_') ? samplesOf([Math.max(...each.map((m) => m.median))]) : samplesOf(each.flatMap((m) => m.samples));
  }
  return { ...rounds[0], metrics };
}
