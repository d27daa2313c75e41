// Shared by the family files: time the implementations of one row and turn the times into table
// rows (throughput, ratio to native, share of the machine's measured peak).
import { measureAlternated } from './measure.mjs';
import { cpuMark, othersShare } from './noise.mjs';

/** Element size of each dtype in bytes. */
export const DTYPE_BYTES = { float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4 };

/**
 * How many input sets to rotate through so that a call does not find its inputs in the
 * last-level cache left warm by the previous call (BENCH.md: rotate inputs that fit in cache).
 * Returns 1 when the inputs are already well beyond the LLC.
 */
export function rotationSets(inputBytes, llcBytes, maxSets = 256) {
  const llc = llcBytes ?? 32 * 1024 * 1024;
  if (inputBytes >= 2 * llc) return 1;
  return Math.max(1, Math.min(maxSets, Math.ceil((3 * llc) / inputBytes)));
}

/**
 * Measures one row and appends its table rows to ctx.rows.
 *   row:   { op, shape, dtype, threads, flops, bytes?, memoryBound?, extra? }
 *          flops: the GEMM-like count (2MNK); bytes: bytes that must be read once (weights), for
 *          the GB/s column; memoryBound: compare with the bandwidth probe rather than the FMA one
 *   impls: [{ name, fn, relErr?, skip? }]; the one named 'native' is the base of the ratios.
 *          skip: a reason; the row is printed with it and not timed.
 */
export async function benchRow(ctx, row, impls) {
  const timed = impls.filter((i) => !i.skip);
  ctx.progress(`${row.op} ${row.shape} ${row.dtype} thr=${row.threads}: ${timed.map((i) => i.name).join(', ')}`);
  const mark = cpuMark();
  const times = timed.length ? await measureAlternated(timed, ctx.plan) : new Map();
  const others = timed.length ? othersShare(mark) : null;
  const base = times.get('native')?.medianMs ?? null;
  for (const impl of impls) {
    const t = times.get(impl.name);
    const r = {
      family: ctx.family,
      op: row.op,
      shape: row.shape,
      dtype: row.dtype,
      threads: row.threads,
      impl: impl.name,
      relErr: impl.relErr ?? null,
      ...row.extra,
    };
    if (!t) {
      r.skipped = impl.skip ?? 'not timed';
      ctx.rows.push(r);
      continue;
    }
    const secs = t.medianMs / 1e3;
    r.medianMs = t.medianMs;
    r.madMs = t.madMs;
    r.minMs = t.minMs;
    r.samples = t.samples;
    r.gflops = row.flops / secs / 1e9;
    r.gbs = row.bytes ? row.bytes / secs / 1e9 : null;
    r.ratioToNative = base ? t.medianMs / base : null;
    r.othersCpu = others;
    // the share of the machine's peak is filled in by applyPeaks() once the run's probes are done
    r.peakKind = row.memoryBound ? 'bw' : 'fma';
    ctx.rows.push(r);
    ctx.progress(
      `  ${impl.name.padEnd(34)} ${t.medianMs.toFixed(3).padStart(10)} ms  ${r.gflops.toFixed(1).padStart(7)} GFLOP/s` +
        (r.gbs ? `  ${r.gbs.toFixed(1)} GB/s` : '') +
        (r.ratioToNative ? `  x${r.ratioToNative.toFixed(2)}` : ''),
    );
  }
}

/**
 * Fills peakShare of every row: fma rows against the FMA probe at the row's thread count, bw rows
 * (memory bound) against the bandwidth probe. Called at the end of a run, when the limits are the
 * best of the probes taken before and after the families (a probe that ran while another process
 * was busy would otherwise understate the machine).
 */
export function applyPeaks(rows, limits) {
  for (const r of rows) {
    if (r.medianMs === undefined) continue;
    const peak = r.peakKind === 'bw' ? limits.bw[r.threads] : limits.fma[r.threads];
    const value = r.peakKind === 'bw' ? r.gbs : r.gflops;
    r.peakShare = peak && value ? value / peak : null;
  }
}
