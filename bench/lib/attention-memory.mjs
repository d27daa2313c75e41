// Child process of the attention family's memory row (bench/attention.mjs): one native
// attention call on a long sequence, and how far the process's peak RSS rose during it.
//
//   node bench/lib/attention-memory.mjs '{"B":1,"Hq":8,"Hk":8,"D":128,"S":16384,"causal":true,"threads":2}'
//
// Prints one JSON line: { ms, rssBefore, maxRssBefore, maxRssAfter, hwmReset, inBytes, outBytes,
// relErr, othersCpu } (bytes), or { error }. A fresh process, so that the high-water mark is not the one
// an earlier, bigger benchmark row left behind; the inputs are made before the first reading, so
// the growth is what the call itself allocates (its output included, which the parent subtracts).
import { readFileSync, writeFileSync } from 'node:fs';
import { cpuMark, othersShare } from './noise.mjs';
import { attentionRows64, pickRows, relErr } from './attention-ref.mjs';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

/** Linux: sets this process's peak RSS (VmHWM) to its current RSS (clear_refs 5); false elsewhere. */
function resetPeakRss() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return peakRss() > 0;
  } catch {
    return false;
  }
}

/** VmHWM of /proc/self/status in bytes (0 when unreadable). */
function peakRss() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function main() {
  const p = JSON.parse(process.argv[2] ?? '{}');
  const { B = 1, Hq = 8, Hk = Hq, D = 128, S = 16384, causal = true, threads = 1 } = p;
  const tf = await import('tensorfuse');
  if (typeof tf.attention !== 'function') return out({ error: 'attention() is not exported by this build' });
  tf.backend.setThreads(threads);

  // warm-up on a small shape: starts the pool, loads the code paths, sizes any per-thread scratch
  {
    const q = tf.randn([1, 256, Hq, D], { seed: 1 });
    const k = tf.randn([1, 256, Hk, D], { seed: 2 });
    tf.attention(q, k, k, { causal, layout: 'bshd' }).dispose();
  }

  const q = tf.randn([B, S, Hq, D], { seed: 11 });
  const k = tf.randn([B, S, Hk, D], { seed: 12 });
  const v = tf.randn([B, S, Hk, D], { seed: 13 });
  const inBytes = (q.size + k.size + v.size) * 4;
  const outBytes = B * S * Hq * D * 4;

  if (typeof globalThis.gc === 'function') globalThis.gc();
  // Linux: reset the peak to the current RSS, so that the setup's own peak (randn's temporaries,
  // kept mapped by the addon's malloc settings) cannot hide the call's growth; elsewhere the
  // process-lifetime peak, which only bounds the growth from above when the call stays under it.
  const hwmReset = resetPeakRss();
  const rssBefore = process.memoryUsage().rss;
  const maxRssBefore = hwmReset ? peakRss() : process.resourceUsage().maxRSS * 1024;
  const mark = cpuMark();
  const t0 = performance.now();
  const y = tf.attention(q, k, v, { causal, layout: 'bshd' });
  const ms = performance.now() - t0;
  const maxRssAfter = hwmReset ? peakRss() : process.resourceUsage().maxRSS * 1024;
  const othersCpu = othersShare(mark);

  // check two rows against float64 (the last query sees every key)
  const dims = { B, Sq: S, Sk: S, Hq, Hk, D, causal };
  const picks = [
    { b: 0, i: S - 1, h: 0 },
    { b: 0, i: S >> 1, h: Hq - 1 },
  ];
  const truth = attentionRows64({ q: q.data(), k: k.data(), v: v.data() }, dims, picks);
  const err = relErr(pickRows(y.data(), dims, picks), truth);
  out({ ms, rssBefore, maxRssBefore, maxRssAfter, hwmReset, inBytes, outBytes, relErr: err, othersCpu });
}

main().catch((e) => out({ error: `${e?.code ? `${e.code} ` : ''}${String(e?.message ?? e).split('\n')[0]}` }));
