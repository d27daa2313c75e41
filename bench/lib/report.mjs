// Output of a run: the table on stdout, bench/results/latest.json and latest.md.
import fs from 'node:fs';
import path from 'node:path';

const MiB = 1024 * 1024;

export function fmtTime(ms) {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.1 ? 2 : 1)} us`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 3 : ms < 100 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(3)} s`;
}

const fixed = (v, d) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const pct = (v) =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
const sci = (v) => (v === null || v === undefined ? '-' : v === 0 ? '0' : v.toExponential(1));

/** The columns of every family's table (a row is a plain object, see gemm.mjs). */
export const COLUMNS = [
  { key: 'op', title: 'op', get: (r) => r.op },
  { key: 'shape', title: 'shape', get: (r) => r.shape },
  { key: 'dtype', title: 'dtype', get: (r) => r.dtype },
  { key: 'threads', title: 'thr', get: (r) => String(r.threads), right: true },
  { key: 'impl', title: 'implementation', get: (r) => r.impl },
  { key: 'median', title: 'median', get: (r) => (r.skipped ? r.skipped : fmtTime(r.medianMs)), right: true },
  { key: 'n', title: 'n', get: (r) => (r.samples ? String(r.samples) : '-'), right: true },
  { key: 'gflops', title: 'GFLOP/s', get: (r) => fixed(r.gflops, 1), right: true },
  { key: 'gbs', title: 'GB/s', get: (r) => fixed(r.gbs, 1), right: true },
  { key: 'ratio', title: 't / t(native)', get: (r) => fixed(r.ratioToNative, 2), right: true },
  {
    key: 'peak',
    title: '% peak',
    get: (r) => (r.peakShare == null ? '-' : `${pct(r.peakShare)} ${r.peakKind}`),
    right: true,
  },
  { key: 'err', title: 'rel.err', get: (r) => sci(r.relErr), right: true },
  { key: 'others', title: 'others', get: (r) => (r.othersCpu == null ? '-' : pct(r.othersCpu)), right: true },
];

function cells(rows) {
  return rows.map((r) => COLUMNS.map((c) => c.get(r)));
}

/** A fixed-width text table (stdout). */
export function textTable(rows) {
  const body = cells(rows);
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...body.map((b) => b[i].length)));
  const line = (vals) =>
    vals
      .map((v, i) => (COLUMNS[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [line(COLUMNS.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  ')];
  let prev = null;
  for (let i = 0; i < rows.length; i++) {
    const group = `${rows[i].op}|${rows[i].shape}|${rows[i].dtype}|${rows[i].threads}`;
    if (prev !== null && group !== prev) out.push('');
    prev = group;
    out.push(line(body[i]));
  }
  return out.join('\n');
}

/** A GitHub markdown table. */
export function markdownTable(rows) {
  const esc = (s) => s.replace(/\|/g, '\\|');
  const out = [
    `| ${COLUMNS.map((c) => c.title).join(' | ')} |`,
    `|${COLUMNS.map((c) => (c.right ? '---:' : ':---')).join('|')}|`,
  ];
  for (const b of cells(rows)) out.push(`| ${b.map(esc).join(' | ')} |`);
  return out.join('\n');
}

/** The header lines shared by stdout and the markdown file. */
export function headerLines(run) {
  const m = run.machine;
  const l = run.limits;
  const gb = (b) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  const lines = [
    `date: ${m.date}   mode: ${run.options.quick ? 'quick' : 'full'}   threads: ${run.options.threads.join(',')}   families: ${run.options.families.join(', ')}`,
    `cpu: ${m.cpuModel}${m.cpuModelOs && m.cpuModelOs !== m.cpuModel ? ` (${m.cpuModelOs})` : ''}, ${m.hardwareThreads} hardware threads, ` +
      `LLC ${m.lastLevelCacheBytes ? `${m.lastLevelCacheBytes / MiB} MiB` : 'unknown'}, memory ${gb(m.memoryBytes)}`,
    `features: ${m.features.join(' ')}`,
    `os: ${m.os}   node: ${m.node}   tinybench: ${m.tinybench ?? '?'}`,
    `tensorfuse: ${m.tensorfuse.version}` +
      (m.tensorfuse.commit ? ` (git ${m.tensorfuse.commit}${m.tensorfuse.dirty ? ' + local changes' : ''})` : '') +
      (m.tensorfuse.addonBuilt ? `, addon built ${m.tensorfuse.addonBuilt.replace('T', ' ').slice(0, 19)} UTC` : ''),
    `  isa ${m.tensorfuse.isa} (available ${m.tensorfuse.isas.join(', ')}), pool ${m.poolThreads} threads   ` +
      `onnxruntime-node: ${m.onnxruntimeNode ?? `not available (${m.onnxruntimeNodeError ?? 'not installed'})`}`,
    `load average at start: ${m.loadAverage.map((x) => x.toFixed(2)).join(' ')}` +
      (run.loadAverageEnd ? `   at end: ${run.loadAverageEnd.map((x) => x.toFixed(2)).join(' ')}` : '') +
      (run.othersCpu != null ? `   other processes used ${pct(run.othersCpu)} of the CPU while the families ran` : ''),
  ];
  if (run.warning) lines.push(`WARNING: ${run.warning}`);
  const threads = Object.keys(l.fma).map(Number);
  const best = l.probes && l.probes.length > 1 ? ', best of the start and end probes' : '';
  lines.push(
    `peak FP32 FMA (native probe, independent chains${best}): ${threads.map((t) => `${l.fma[t].toFixed(1)} GFLOP/s @ ${t} thr`).join(', ')}`,
    `streaming read bandwidth (native probe, ${l.bandwidthBufferBytes / MiB} MiB buffer${best}): ${threads.map((t) => `${l.bw[t].toFixed(1)} GB/s @ ${t} thr`).join(', ')}`,
  );
  if (l.probes?.some((p) => p.othersCpu != null))
    lines.push(
      `other processes during the probes: ${l.probes.map((p) => `${pct(p.othersCpu)} (${p.when})`).join(', ')}`,
    );
  if (run.loadTime) {
    const lt = run.loadTime;
    lines.push(
      `load time (fresh process, require('tensorfuse') to first matmul done, median of ${lt.runs}): ${lt.totalMs.toFixed(1)} ms ` +
        `(require ${lt.requireMs.toFixed(1)} ms + first op ${lt.firstOpMs.toFixed(1)} ms; min ${lt.minTotalMs.toFixed(1)} ms) ` +
        `target < ${lt.targetMs} ms: ${lt.totalMs < lt.targetMs ? 'met' : 'MISSED'}`,
    );
  } else if (run.loadTimeError) lines.push(`load time: not measured (${run.loadTimeError})`);
  return lines;
}

const LEGEND = [
  'median: median of the pooled tinybench samples (n) after warm-up; implementations alternated in rounds.',
  't / t(native): time over the native time of the same row (> 1: slower than tensorfuse).',
  '% peak: fma = GFLOP/s over the FMA probe at that thread count; bw = weight GB/s over the bandwidth probe.',
  'rel.err: ||y - y_ref|| / ||y_ref|| of the first output rows against the float64 reference, checked before timing.',
  'others: CPU share used by other processes (and steal) while the row was timed; above ~10% the row is noisy.',
];

export function printRun(run) {
  const out = [];
  out.push('# tensorfuse benchmark', ...headerLines(run), '');
  for (const f of run.families) {
    out.push(`## ${f.name}${f.title ? `: ${f.title}` : ''}`);
    if (f.status !== 'ok') {
      out.push(f.status, '');
      continue;
    }
    if (f.rows.length) out.push(textTable(f.rows));
    for (const n of f.notes) out.push(`- ${n}`);
    out.push('');
  }
  out.push(...LEGEND.map((l) => `  ${l}`));
  process.stdout.write(out.join('\n') + '\n');
}

export function writeResults(run, dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(run, null, 2) + '\n');
  const md = ['# tensorfuse benchmark: latest run', '', '```', ...headerLines(run), '```', ''];
  for (const f of run.families) {
    md.push(`## ${f.name}${f.title ? `: ${f.title}` : ''}`, '');
    if (f.status !== 'ok') {
      md.push(f.status, '');
      continue;
    }
    if (f.rows.length) md.push(markdownTable(f.rows), '');
    for (const n of f.notes) md.push(`- ${n}`);
    if (f.notes.length) md.push('');
  }
  md.push(...LEGEND.map((l) => `- ${l}`), '');
  md.push(
    `Reproduce: \`npm run bench -- ${[...run.options.families, run.options.quick ? '--quick' : '', `--threads ${run.options.threads.join(',')}`].filter(Boolean).join(' ')}\``,
    '',
  );
  fs.writeFileSync(path.join(dir, 'latest.md'), md.join('\n'));
}
