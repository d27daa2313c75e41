// `npm run test:native`: configures and builds the core and its C++ checks with plain CMake (no
// Node headers, no cmake-js: -DTENSORFUSE_ADDON=OFF) into build-native/, then runs them.
// CUDA is compiled in when CMake finds nvcc, and left out otherwise; the checks pass either way.
//
//   node scripts/native-tests.mjs                          everything
//   node scripts/native-tests.mjs gemm fp16                only cases whose name contains one
//   node scripts/native-tests.mjs -DTENSORFUSE_CUDA_ARCHS=80   CMake cache settings (-D...), which
//                                                          stay in build-native/ until it is deleted
// Environment: CMAKE_BUILD_PARALLEL_LEVEL (default 2 jobs), TENSORFUSE_TEST_SEED (replay a run).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build-native');
const cmakeArgs = process.argv.slice(2).filter((a) => a.startsWith('-D'));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-D'));

function run(what, cmd, args) {
  const t0 = performance.now();
  console.log(`> ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    console.error(`native-tests: could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  console.log(`native-tests: ${what} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (r.status !== 0) process.exit(r.status ?? 1);
}

mkdirSync(buildDir, { recursive: true });
// The folder ignores itself, so git (and the device tool's copy of the tree) never pick it up.
writeFileSync(join(buildDir, '.gitignore'), '*\n');

run('configure', 'cmake', [
  '-S',
  root,
  '-B',
  buildDir,
  '-DTENSORFUSE_ADDON=OFF',
  '-DTENSORFUSE_TESTS=ON',
  '-DCMAKE_BUILD_TYPE=Release',
  ...cmakeArgs,
]);
const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ? [] : ['--parallel', '2'];
run('build', 'cmake', ['--build', buildDir, '--config', 'Release', '--target', 'tensorfuse_core_tests', ...jobs]);

// Single-config generators put the executable in the build folder, multi-config ones (Visual
// Studio, Xcode) in a folder per configuration.
const exe = process.platform === 'win32' ? 'tensorfuse_core_tests.exe' : 'tensorfuse_core_tests';
const candidates = [join(buildDir, exe), join(buildDir, 'Release', exe)];
const found = candidates.find((p) => existsSync(p));
if (!found) {
  console.error(`native-tests: no test executable in ${candidates.join(' or ')}`);
  process.exit(1);
}
run('checks', found, filters);
