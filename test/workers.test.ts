/** The addon is context-aware: it loads in worker_threads, and two workers run ops at once. */
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { matmul, randn } from 'tensorfuse';

const script = `
const { parentPort, workerData } = require('node:worker_threads');
const tf = require(workerData.pkg);
const a = tf.randn([96, 200], { seed: workerData.seed });
const b = tf.randn([200, 80], { seed: workerData.seed + 1 });
let last;
for (let i = 0; i < workerData.iters; i++) last = tf.matmul(a, b);
tf.matmulAsync(a, b).then((c) => {
  const bytes = (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const same = bytes(c.data()).equals(bytes(last.data()));
  parentPort.postMessage({ sum: Array.from(last.data()).reduce((p, x) => p + x, 0), same });
});
`;

function runWorker(seed: number): Promise<{ sum: number; same: boolean }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(script, {
      eval: true,
      workerData: { pkg: path.resolve('dist/cjs/index.js'), seed, iters: 50 },
    });
    w.once('message', (m) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('worker_threads', () => {
  it('two workers and the main thread run matmul at the same time with correct results', async () => {
    const seeds = [11, 29];
    const want = seeds.map((s) =>
      Array.from(matmul(randn([96, 200], { seed: s }), randn([200, 80], { seed: s + 1 })).data()).reduce(
        (p, x) => p + x,
        0,
      ),
    );
    const jobs = seeds.map(runWorker);
    // the main thread keeps the pool busy meanwhile
    for (let i = 0; i < 20; i++) matmul(randn([64, 64], { seed: i }), randn([64, 64], { seed: i + 100 }));
    const got = await Promise.all(jobs);
    got.forEach((g, i) => {
      expect(g.same).toBe(true);
      expect(g.sum).toBe(want[i]);
    });
  });

  it('a worker can load, run and exit repeatedly', async () => {
    for (let i = 0; i < 3; i++) await runWorker(100 + i);
  });

  // A worker that exits (or is terminated) while its Async ops are still running: their promises
  // can no longer be settled there, and that must not take the process down. Run in a child
  // process so a crash is observed, not suffered.
  it('a worker exiting or terminated with Async ops in flight leaves the process running', () => {
    const pkg = JSON.stringify(path.resolve('dist/cjs/index.js'));
    const work = [
      `const tf = require(${pkg});`,
      'const a = tf.randn([384, 384], { seed: 5 });',
      'const q = tf.randn([1, 256, 8, 64], { seed: 6 });',
      'for (let i = 0; i < 4; i++) { tf.matmulAsync(a, a); tf.attentionAsync(q, q, q); }',
      'tf.quantizeAsync(a, { bits: 4, groupSize: 32 });',
    ].join('\n');
    const child = [
      "const { Worker } = require('node:worker_threads');",
      `const work = ${JSON.stringify(work)};`,
      'let left = 6;',
      "const done = () => { if (--left === 0) console.log('alive'); };",
      'for (let i = 0; i < 3; i++) {',
      "  new Worker(work + '\\nprocess.exit(0);', { eval: true }).on('exit', done);",
      '  const w = new Worker(work + \'\\nrequire("node:worker_threads").parentPort.postMessage(1);\', { eval: true });',
      "  w.on('message', () => void w.terminate());",
      "  w.on('exit', done);",
      '}',
    ].join('\n');
    const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/terminate called|Napi::Error|Segmentation|Aborted/);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('alive');
  });
});
