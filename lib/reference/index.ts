/** float64 references of every op, written for clarity (tests and benches compare to them). */
export * from './tensor64.js';
export * from './gemm.js';
export * from './dtype.js';
export * from './attention.js';
export * from './moe.js';
export * from './prune.js';
export * from './quant.js';
