import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Tests import the built package (dist/), exactly what users get.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^tensorfuse\/reference$/, replacement: path.resolve('dist/esm/reference/index.mjs') },
      { find: /^tensorfuse$/, replacement: path.resolve('dist/esm/index.mjs') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
