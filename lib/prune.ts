/** The `prune` namespace of the package root (API.md "Structured pruning"): lib/ops/prune.ts. */
export {
  score,
  scoreAsync,
  nm,
  nmAsync,
  compress,
  compressAsync,
  decompress,
  decompressAsync,
  channels,
  channelsAsync,
  ffn,
  ffnAsync,
  heads,
  headsAsync,
  type SparseTensor,
} from './ops/prune.js';
