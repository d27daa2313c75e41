// Timing of the implementations of one row, alternated: the run is cut into rounds and every
// round gives each implementation one tinybench slice, in a rotated order, so that a burst of
// noise on this shared machine (a compiler, another benchmark) lands on all of them rather than
// on whichever ran during it. The reported time is the median of the pooled samples.
import { Bench } from 'tinybench';

/** Settings of the two modes; `--quick` keeps the whole run under a minute. */
export function timingPlan(quick) {
  return quick
    ? { rounds: 2, iterationsPerRound: 3, timePerRoundMs: 60, warmupIterations: 1, warmupTimeMs: 0 }
    : { rounds: 3, iterationsPerRound: 3, timePerRoundMs: 300, warmupIterations: 2, warmupTimeMs: 100 };
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  return lo + 1 < sorted.length ? sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

/**
 * impls: [{ name, fn }], fn sync or async (one call = one sample).
 * Returns Map name -> { medianMs, madMs, minMs, samples } (samples in ms, sorted).
 * Each implementation gets at least rounds * iterationsPerRound >= 6 samples after its warm-up.
 */
export async function measureAlternated(impls, plan) {
  const samples = new Map(impls.map((i) => [i.name, []]));
  for (let r = 0; r < plan.rounds; r++) {
    const order = impls.map((_, i) => impls[(i + r) % impls.length]);
    for (const impl of order) {
      const bench = new Bench({
        time: plan.timePerRoundMs,
        iterations: plan.iterationsPerRound,
        warmup: r === 0,
        warmupIterations: plan.warmupIterations,
        warmupTime: plan.warmupTimeMs,
        throws: true,
      });
      bench.add(impl.name, impl.fn);
      await bench.run();
      const result = bench.tasks[0].result;
      if (!result || result.error) throw result?.error ?? new Error(`${impl.name}: no result`);
      samples.get(impl.name).push(...result.latency.samples);
    }
  }
  const out = new Map();
  for (const [name, s] of samples) {
    s.sort((a, b) => a - b);
    const med = quantile(s, 0.5);
    const dev = s.map((x) => Math.abs(x - med)).sort((a, b) => a - b);
    out.set(name, { medianMs: med, madMs: quantile(dev, 0.5), minMs: s[0], samples: s.length });
  }
  return out;
}
