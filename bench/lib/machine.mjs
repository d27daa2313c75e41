// The header of a run: what the machine is, what it can do at most (native probes), and how long
// the package takes to load. See ../../../shared/BENCH.md, "The machine's limits".
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const packageRoot = path.resolve(here, '..', '..');
const require = createRequire(import.meta.url);

function readFirstLine(file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n')[0].trim();
  } catch {
    return null;
  }
}

/** Size in bytes of the last-level cache of CPU 0 (Linux sysfs); null when unknown. */
export function lastLevelCacheBytes() {
  let best = null;
  for (let i = 0; i < 8; i++) {
    const size = readFirstLine(`/sys/devices/system/cpu/cpu0/cache/index${i}/size`);
    if (!size) continue;
    const m = /^(\d+)([KMG]?)/.exec(size);
    if (!m) continue;
    const bytes = Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]];
    if (best === null || bytes > best) best = bytes;
  }
  return best;
}

function packageVersion(name) {
  try {
    return require(`${name}/package.json`).version;
  } catch {
    try {
      // packages whose "exports" hide package.json: walk up from the entry point
      let dir = path.dirname(require.resolve(name));
      for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
        const p = path.join(dir, 'package.json');
        if (fs.existsSync(p)) {
          const pkg = JSON.parse(fs.readFileSync(p, 'utf8'));
          if (pkg.name === name) return pkg.version;
        }
      }
    } catch {
      /* not installed */
    }
  }
  return null;
}

/**
 * Which tensorfuse is measured: the git commit (plus whether lib/ or native/ differ from it) and
 * when the loaded addon was built. Kernels change between runs; the table has to say which ran.
 */
export function buildIdentity() {
  const id = { commit: null, dirty: null, addonBuilt: null };
  try {
    const git = (args) =>
      execFileSync('git', args, { cwd: packageRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    id.commit = git(['rev-parse', '--short', 'HEAD']);
    id.dirty = git(['status', '--porcelain', '--', 'lib', 'native', 'binding.gyp', 'CMakeLists.txt']) !== '';
  } catch {
    /* not a git checkout (an installed package) */
  }
  for (const p of ['build/Release/tensorfuse.node', 'build-cmake/Release/tensorfuse.node']) {
    try {
      id.addonBuilt = fs.statSync(path.join(packageRoot, p)).mtime.toISOString();
      id.addonPath = p;
      break;
    } catch {
      /* try the next one; a prebuilt binary has no local build */
    }
  }
  return id;
}

/** Static description of the machine and the software under test. */
export function describeMachine(tf, peers) {
  const info = tf.backend.info();
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8'));
  const cpus = os.cpus();
  const llc = lastLevelCacheBytes();
  return {
    date: new Date().toISOString(),
    cpuModel: info.cpu.model || cpus[0]?.model || 'unknown',
    cpuModelOs: cpus[0]?.model ?? 'unknown',
    features: info.cpu.features,
    hardwareThreads: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    poolThreads: info.cpu.threads,
    lastLevelCacheBytes: llc,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${process.arch}`,
    node: process.version,
    tensorfuse: {
      version: info.version,
      packageVersion: pkg.version,
      isa: info.cpu.isa,
      isas: info.cpu.isas,
      ...buildIdentity(),
    },
    onnxruntimeNode: peers.ort ? (packageVersion('onnxruntime-node') ?? 'unknown') : null,
    onnxruntimeNodeError: peers.ortError ?? null,
    tinybench: packageVersion('tinybench'),
    loadAverage: os.loadavg(),
  };
}

/**
 * Machine limits from the native probes, at each thread count asked for:
 *   fma[t]: peak float32 GFLOP/s, independent FMA chains on t threads (best of `trials`)
 *   bw[t]:  streaming read GB/s over a buffer far beyond the last-level cache (best of `trials`)
 */
export function probeLimits(threadCounts, { quick }) {
  const { native } = require(path.join(packageRoot, 'dist', 'cjs', 'native.js'));
  const fmaIters = quick ? 2.5e7 : 1e8; // 10 chains x 8 lanes x 2 FLOP per iteration
  const bwBytes = 256 * 1024 * 1024;
  const bwReps = quick ? 2 : 4;
  const trials = 3;
  const fma = {};
  const bw = {};
  for (const t of threadCounts) {
    let f = 0;
    let b = 0;
    for (let i = 0; i < trials; i++) f = Math.max(f, native.probeFma(t, fmaIters));
    for (let i = 0; i < trials; i++) b = Math.max(b, native.probeBandwidth(t, bwBytes, bwReps));
    fma[t] = f;
    bw[t] = b;
  }
  return { fma, bw, bandwidthBufferBytes: bwBytes, fmaIters, bwReps, trials };
}

/**
 * Load time in fresh child processes (bench/lib/load-time.cjs): require + first op, median of
 * `runs`. The target from the brief is < 50 ms.
 */
export function measureLoadTime(runs) {
  const script = path.join(here, 'load-time.cjs');
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, [script], { cwd: packageRoot, encoding: 'utf8' });
    samples.push(JSON.parse(out.trim().split('\n').pop()));
  }
  const med = (key) => {
    const v = samples.map((s) => s[key]).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  return {
    runs,
    requireMs: med('requireMs'),
    firstOpMs: med('firstOpMs'),
    totalMs: med('totalMs'),
    minTotalMs: Math.min(...samples.map((s) => s.totalMs)),
    targetMs: 50,
  };
}
