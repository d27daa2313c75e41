#!/usr/bin/env node
// tensorfuse microbenchmarks (../shared/BENCH.md).
//
//   npm run bench                         every family
//   npm run bench -- gemm --quick         one family, under a minute
//   npm run bench -- gemm --threads 1,2   thread counts to run at
//
// A family is a file bench/<family>.mjs registered in FAMILIES below; it exports `title` and
// `async run(ctx)`, which times its rows with ctx / lib/suite.mjs benchRow() and pushes them to
// ctx.rows (notes, skips and peer problems to ctx.notes). A registered family without a file is
// listed as "not implemented yet".
//
// Output: a header (machine, measured limits, load time), one table per family on stdout, and
// bench/results/latest.json + latest.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { USAGE, parseArgs } from './lib/args.mjs';
import { buildIdentity, describeMachine, lastLevelCacheBytes, measureLoadTime, probeLimits } from './lib/machine.mjs';
import { timingPlan } from './lib/measure.mjs';
import { applyPeaks } from './lib/suite.mjs';
import { cpuMark, othersShare } from './lib/noise.mjs';
import { loadPeers } from './lib/peers.mjs';
import { printRun, writeResults } from './lib/report.mjs';

/** Families in run order; each is bench/<name>.mjs. */
const FAMILIES = ['gemm', 'attention', 'quant', 'moe', 'prune'];

const here = path.dirname(fileURLToPath(import.meta.url));
const progress = (msg) => process.stderr.write(`[bench] ${msg}\n`);

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2), FAMILIES);
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const started = performance.now();

  const tf = await import('tensorfuse');
  const ref = await import('tensorfuse/reference');
  const peers = loadPeers();
  const initialThreads = tf.backend.info().cpu.threads;

  progress('measuring the machine (FMA peak, read bandwidth)');
  const machine = describeMachine(tf, peers);
  const probeThreads = [...new Set([1, opts.hardwareThreads, ...opts.threads])].sort((a, b) => a - b);
  const probeMark = cpuMark();
  const limits = probeLimits(probeThreads, opts);
  limits.probes = [{ when: 'start', fma: { ...limits.fma }, bw: { ...limits.bw }, othersCpu: othersShare(probeMark) }];

  const run = {
    schema: 1,
    options: { families: opts.families, quick: opts.quick, threads: opts.threads },
    machine,
    limits,
    loadTime: null,
    families: [],
  };
  if (opts.loadTime) {
    progress('measuring load time in fresh processes');
    try {
      run.loadTime = measureLoadTime(opts.quick ? 3 : 7);
    } catch (err) {
      run.loadTimeError = String(err?.message ?? err).split('\n')[0];
    }
  }

  const startMark = cpuMark(); // after the load-time children, whose CPU is not ours
  for (const name of opts.families) {
    const file = path.join(here, `${name}.mjs`);
    if (!fs.existsSync(file)) {
      run.families.push({ name, status: 'not implemented yet', rows: [], notes: [] });
      progress(`${name}: not implemented yet`);
      continue;
    }
    const mod = await import(pathToFileURL(file).href);
    const ctx = {
      family: name,
      opts,
      tf,
      ref,
      ort: peers.ort,
      ortError: peers.ortError,
      limits,
      llcBytes: machine.lastLevelCacheBytes ?? lastLevelCacheBytes(),
      plan: timingPlan(opts.quick),
      rows: [],
      notes: [],
      progress: (msg) => progress(`${name}: ${msg}`),
    };
    const t0 = performance.now();
    const entry = { name, title: mod.title ?? '', status: 'ok', rows: ctx.rows, notes: ctx.notes };
    run.families.push(entry);
    try {
      await mod.run(ctx);
    } catch (err) {
      entry.status = `failed: ${err?.stack ?? err}`;
      process.exitCode = 1;
    } finally {
      tf.backend.setThreads(initialThreads);
    }
    entry.seconds = (performance.now() - t0) / 1e3;
  }

  // Probe again after the families and keep the best of both: on a shared machine a probe that
  // ran beside someone else's work understates the peak, and every share would be inflated.
  if (run.families.some((f) => f.rows.length)) {
    progress('probing the machine again (the best of both probes is the peak)');
    const mark = cpuMark();
    const again = probeLimits(probeThreads, opts);
    const others = othersShare(mark);
    limits.probes.push({ when: 'end', fma: again.fma, bw: again.bw, othersCpu: others });
    for (const t of probeThreads) {
      limits.fma[t] = Math.max(limits.fma[t], again.fma[t]);
      limits.bw[t] = Math.max(limits.bw[t], again.bw[t]);
    }
  }
  for (const entry of run.families) {
    applyPeaks(entry.rows, limits);
    const over = entry.rows.filter((r) => r.peakShare > 1);
    if (over.some((r) => r.peakKind === 'bw'))
      entry.notes.push(
        '% bw above 100%: the bandwidth probe reads one sequential stream per thread, and a kernel that streams several ' +
          'rows at once keeps more misses in flight, so the probe is a low estimate of the bandwidth (see bench/NOTES.md).',
      );
    const noisy = entry.rows.filter((r) => r.othersCpu > 0.1);
    if (noisy.length)
      entry.notes.push(
        `${noisy.length} of ${entry.rows.filter((r) => r.medianMs !== undefined).length} timed rows ran while other processes used more than 10% ` +
          'of the CPU (others column): their absolute numbers, the multi-thread rows above all, are low; ratios within a row still hold best. ' +
          'Rerun on a quiet machine before quoting them.',
      );
    if (over.some((r) => r.peakKind === 'fma'))
      entry.notes.push(
        '% fma above 100%: the FMA probe ran on a busier or slower-clocked machine than that row; see the others column.',
      );
  }

  run.loadAverageEnd = os.loadavg();
  const builtNow = buildIdentity().addonBuilt;
  if (builtNow && builtNow !== machine.tensorfuse.addonBuilt)
    run.warning = `the native addon was rebuilt during the run (now ${builtNow}): the rows may mix two builds; rerun`;
  run.othersCpu = othersShare(startMark);
  run.seconds = (performance.now() - started) / 1e3;
  printRun(run);
  const outDir = opts.out ? path.resolve(opts.out) : path.join(here, 'results');
  writeResults(run, outDir);
  progress(
    `done in ${run.seconds.toFixed(1)} s; wrote ${path.relative(process.cwd(), path.join(outDir, 'latest.md'))} and latest.json`,
  );
}

await main();
