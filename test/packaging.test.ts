/**
 * What a user gets from the registry: the packed tarball, installed with install scripts off
 * (npm 11's default for dependencies, pnpm, bun), loads the prebuilt binary with no compiler,
 * works from ESM and CommonJS, type-checks in both module systems, and without a prebuild for
 * the platform fails with instructions.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve('.');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
let work = '';
let installed = '';

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

beforeAll(() => {
  if (!existsSync(prebuildDir) || readdirSync(prebuildDir).length === 0) sh(npm, ['run', 'prebuild'], root);
  work = mkdtempSync(path.join(tmpdir(), 'tensorfuse-pack-'));
  const packed = sh(npm, ['pack', '--pack-destination', work, '--silent'], root).trim().split('\n').pop()!;
  const app = path.join(work, 'app');
  sh('mkdir', ['-p', app], work);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  sh(npm, ['install', path.join(work, packed), '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], app);
  installed = path.join(app, 'node_modules', 'tensorfuse');
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the prebuild and no build products', () => {
    expect(existsSync(path.join(installed, 'prebuilds', `${process.platform}-${process.arch}`))).toBe(true);
    expect(existsSync(path.join(installed, 'build'))).toBe(false);
    expect(existsSync(path.join(installed, 'dist', 'esm', 'index.mjs'))).toBe(true);
  });

  it('loads and runs from CommonJS and ESM with no compiler involved', () => {
    const app = path.dirname(path.dirname(installed));
    // PATH without compilers: the load must not need one
    const env = { PATH: path.dirname(process.execPath), CC: '/nonexistent', CXX: '/nonexistent' };
    const cjs = sh(
      process.execPath,
      [
        '-e',
        `
      const tf = require('tensorfuse');
      const c = tf.matmul(tf.tensor([1, 2, 3, 4], [2, 2]), tf.tensor([5, 6, 7, 8], [2, 2]));
      console.log(JSON.stringify(Array.from(c.data())), tf.backend.info().cpu.isa);`,
      ],
      app,
      env,
    );
    expect(cjs.trim().split(' ')[0]).toBe('[19,22,43,50]');
    const esm = sh(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      import { linear, tensor, Tensor } from 'tensorfuse';
      import { createRequire } from 'node:module';
      const y = linear(tensor([1, 2], [1, 2]), tensor([1, 1, 2, -1], [2, 2]));
      const same = createRequire(import.meta.url)('tensorfuse').Tensor === Tensor;
      console.log(JSON.stringify(Array.from(y.data())), same);`,
      ],
      app,
      env,
    );
    expect(esm.trim()).toBe('[3,0] true');
  });

  it('type-checks for ESM and CommonJS consumers', () => {
    const app = path.dirname(path.dirname(installed));
    const use = `
      const a: Tensor = randn([2, 3], { seed: 1, dtype: 'bfloat16' });
      const b = matmul(a, zeros([3, 4], { dtype: 'bfloat16' }), { transB: false });
      const y: Tensor = linear(a, zeros([5, 3], { dtype: 'bfloat16' }), { bias: zeros([5]) });
      const p: Promise<Tensor> = matmulAsync(a, b);
      const i = backend.info(); const n: number = i.cpu.threads;
      const e = new TensorfuseError('ERR_ARG', 'x'); const c: string = e.code;
      // @ts-expect-error: dtype is checked
      zeros([1], { dtype: 'float64' });
      // @ts-expect-error: shape is number[]
      tensor([1], '1');
      // attention: returnLse true gives { out, lse }; any AttentionOptions value gives a Tensor
      const o: AttentionOptions = { causal: true, softcap: 0 };
      const q = zeros([1, 2, 2, 8]);
      const at: Tensor = attention(q, q, q, o);
      const lse: { out: Tensor; lse: Tensor } = attention(q, q, q, { returnLse: true, causal: true });
      const aa: Promise<Tensor> = attentionAsync(q, q, q, o);
      const al: Promise<{ out: Tensor; lse: Tensor }> = attentionAsync(q, q, q, { returnLse: true });
      void [y, p, n, c, tensor, at, lse, aa, al];`;
    writeFileSync(
      path.join(app, 'esm.mts'),
      `import { Tensor, TensorfuseError, attention, attentionAsync, backend, linear, matmul, matmulAsync, randn, tensor, zeros, type AttentionOptions } from 'tensorfuse';\n${use}\n`,
    );
    writeFileSync(
      path.join(app, 'cjs.cts'),
      `import tf = require('tensorfuse');\nconst { Tensor, TensorfuseError, attention, attentionAsync, backend, linear, matmul, matmulAsync, randn, tensor, zeros } = tf;\ntype Tensor = InstanceType<typeof Tensor>;\ntype AttentionOptions = tf.AttentionOptions;\n${use}\n`,
    );
    const tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
    const noTypes = path.join(app, 'no-types');
    mkdirSync(noTypes, { recursive: true });
    const out = (() => {
      try {
        return sh(
          process.execPath,
          [
            tsc,
            '--noEmit',
            '--strict',
            '--module',
            'nodenext',
            '--moduleResolution',
            'nodenext',
            '--target',
            'es2022',
            '--lib',
            'es2022,esnext.disposable',
            // no @types/node (an empty typeRoots): the published types must not need it
            '--typeRoots',
            noTypes,
            'esm.mts',
            'cjs.cts',
          ],
          app,
        );
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? e);
      }
    })();
    expect(out).toBe('');
  });

  it('without a prebuild for the platform, the load error says what to do', () => {
    const copy = path.join(work, 'noprebuild', 'node_modules', 'tensorfuse');
    cpSync(installed, copy, { recursive: true });
    cpSync(path.join(path.dirname(installed), 'node-gyp-build'), path.join(path.dirname(copy), 'node-gyp-build'), {
      recursive: true,
    });
    rmSync(path.join(copy, 'prebuilds'), { recursive: true, force: true });
    const out = sh(
      process.execPath,
      [
        '-e',
        `try { require('tensorfuse'); console.log('loaded') } catch (e) { console.log(e.code + ' ' + e.message) }`,
      ],
      path.dirname(path.dirname(copy)),
    );
    expect(out).toContain('ERR_UNSUPPORTED');
    expect(out).toContain('npm install-scripts approve tensorfuse');
    expect(out).toContain('build:native');
  });
});
