/**
 * The one loader of the native addon. node-gyp-build looks for, in order, a local build
 * (build/Release) and a prebuilt binary shipped in prebuilds/<platform>-<arch>/; when neither
 * fits, the error says exactly how to get one.
 */
import * as path from 'node:path';
import { TensorfuseError } from './errors.js';
import { holdBuffers, releaseBuffers } from './pool.js';

/** The functions the addon exports (native/napi/*.cc). Sizes are element counts. */
export interface NativeBinding {
  setErrorClass(ctor: typeof TensorfuseError): void;
  info(): {
    version: string;
    features: string[];
    threads: number;
    hardwareThreads: number;
    isa: string;
    bestIsa: string;
    isas: string[];
    model: string;
    cudaCompiled: boolean;
  };
  /** Whether the addon set glibc's malloc up for large buffers at load (tune_malloc_for_large_buffers). */
  mallocTuned: boolean;
  setThreads(n: number): void;
  setIsa(isa: string): void;
  probeFma(threads: number, iters: number): number;
  probeBandwidth(threads: number, bytes: number, reps: number): number;
  convert(src: ArrayBufferView, srcDtype: number, dst: ArrayBufferView, dstDtype: number, n: number): void;
  /** Maps in the pages of a fresh buffer at once (madvise MADV_POPULATE_WRITE; a no-op elsewhere). */
  prefault(buf: ArrayBufferView): void;
  /** The address of the view's first byte modulo `align` (a power of two up to 4096). */
  addressMod(buf: ArrayBufferView, align: number): number;
  gemm(...args: GemmArgs): void;
  gemmAsync(...args: GemmArgs): Promise<void>;
  attention(...args: AttentionArgs): void;
  attentionAsync(...args: AttentionArgs): Promise<void>;
  moeRoute(...args: MoeRouteArgs): void;
  moeRouteAsync(...args: MoeRouteArgs): Promise<void>;
  moeAlign(...args: MoeAlignArgs): void;
  moeAlignAsync(...args: MoeAlignArgs): Promise<void>;
  moeDispatch(...args: MoeMoveArgs): void;
  moeDispatchAsync(...args: MoeMoveArgs): Promise<void>;
  moeCombine(...args: MoeMoveArgs): void;
  moeCombineAsync(...args: MoeMoveArgs): Promise<void>;
  moeFfn(...args: MoeFfnArgs): void;
  moeFfnAsync(...args: MoeFfnArgs): Promise<void>;
  // prune (native/napi/prune.cc): sparse linear, N:M masks, the compressed format
  sparseLinear(...args: SparseLinearArgs): void;
  sparseLinearAsync(...args: SparseLinearArgs): Promise<void>;
  pruneLanes(indices: Uint8Array, N: number, K: number, n: number, m: number, lanes: Uint16Array | null): void;
  pruneScore(...args: PruneScoreArgs): void;
  pruneScoreAsync(...args: PruneScoreArgs): Promise<void>;
  pruneNm(...args: PruneNmArgs): void;
  pruneNmAsync(...args: PruneNmArgs): Promise<void>;
  pruneCompress(...args: PruneCompressArgs): void;
  pruneCompressAsync(...args: PruneCompressArgs): Promise<void>;
  pruneDecompress(...args: PruneDecompressArgs): void;
  pruneDecompressAsync(...args: PruneDecompressArgs): Promise<void>;
  pruneGather(...args: PruneGatherArgs): void;
  pruneGatherAsync(...args: PruneGatherArgs): Promise<void>;
  pruneNorms(...args: PruneNormsArgs): void;
  pruneNormsAsync(...args: PruneNormsArgs): Promise<void>;
}

/**
 * One attention call as native/napi/attention.cc takes it: the buffers by position, then every
 * size and option in one Float64Array (ATTENTION_NUMS entries; the napi file documents the order).
 */
export type AttentionArgs = [
  q: ArrayBufferView,
  k: ArrayBufferView,
  v: ArrayBufferView,
  out: ArrayBufferView,
  lse: Float32Array | null,
  alibi: Float32Array | null,
  mask: ArrayBufferView | null,
  seqlensK: Int32Array | null,
  cuSeqlensQ: Int32Array | null,
  cuSeqlensK: Int32Array | null,
  nums: Float64Array,
];
export const ATTENTION_NUMS = 33;

/** A Routing as native/napi/moe.cc takes it. */
export type MoeRoutingArgs = [
  T: number,
  topK: number,
  E: number,
  weights: Float32Array,
  offsets: Int32Array,
  order: Int32Array,
  rows: number,
];
export type MoeRouteArgs = [
  logits: Float32Array,
  T: number,
  E: number,
  topK: number,
  scoring: number,
  normalize: boolean,
  bias: Float32Array | null,
  groups: number,
  groupTopK: number,
  scale: number,
  capacityFactor: number,
  weights: Float32Array,
  experts: Int32Array,
  counts: Int32Array,
  offsets: Int32Array,
  order: Int32Array,
  stats: Float64Array,
];
export type MoeAlignArgs = [
  experts: Int32Array,
  nSlots: number,
  numExperts: number,
  blockSize: number,
  sortedTokenIds: Int32Array,
  expertIds: Int32Array,
  stats: Float64Array,
];
export type MoeMoveArgs = [
  input: ArrayBufferView,
  dtype: number,
  D: number,
  ...routing: MoeRoutingArgs,
  out: ArrayBufferView,
];
export type MoeFfnArgs = [
  x: ArrayBufferView,
  dtype: number,
  D: number,
  F: number,
  ...routing: MoeRoutingArgs,
  ...w1: MoeWeightArgs,
  ...w3: MoeWeightArgs,
  ...w2: MoeWeightArgs,
  activation: number,
  out: ArrayBufferView,
  int8Activations: boolean,
  w1Strips?: Uint8Array | null,
  w3Strips?: Uint8Array | null,
  w2Strips?: Uint8Array | null,
];
/** One expert weight of moeFfn: bits 0 = float [E, N, K] in x's dtype (scales and zeros null),
 *  8 / 4 = a stacked QTensor's codes, scales and zeros; data null for an absent w3. */
export type MoeWeightArgs = [
  bits: number,
  groupSize: number,
  data: ArrayBufferView | null,
  scales: Float32Array | null,
  zeros: Uint8Array | null,
];

export type GemmArgs = [
  a: ArrayBufferView,
  aDtype: number,
  b: ArrayBufferView,
  bDtype: number,
  out: ArrayBufferView,
  outDtype: number,
  batch: number,
  M: number,
  N: number,
  K: number,
  transB: boolean,
  strideA: number,
  strideB: number,
  strideC: number,
  bias: Float32Array | null,
  activation: number,
];

export type SparseLinearArgs = [
  x: ArrayBufferView,
  xDtype: number,
  values: ArrayBufferView,
  wDtype: number,
  indices: Uint8Array,
  lanes: Uint16Array | null,
  out: ArrayBufferView,
  outDtype: number,
  M: number,
  N: number,
  K: number,
  n: number,
  m: number,
  bias: Float32Array | null,
];
export type PruneScoreArgs = [
  w: ArrayBufferView,
  dtype: number,
  norms: Float32Array | null,
  N: number,
  K: number,
  out: Float32Array,
];
export type PruneNmArgs = [
  w: ArrayBufferView,
  dtype: number,
  scores: Float32Array | null,
  N: number,
  K: number,
  n: number,
  m: number,
  weight: ArrayBufferView,
  mask: Uint8Array,
];
export type PruneCompressArgs = [
  w: ArrayBufferView,
  dtype: number,
  N: number,
  K: number,
  n: number,
  m: number,
  values: ArrayBufferView,
  indices: Uint8Array,
];
export type PruneDecompressArgs = [
  values: ArrayBufferView,
  indices: Uint8Array,
  dtype: number,
  N: number,
  K: number,
  n: number,
  m: number,
  out: ArrayBufferView,
];
export type PruneGatherArgs = [
  src: ArrayBufferView,
  dtype: number,
  rows: number,
  cols: number,
  axis: number,
  kept: Int32Array,
  out: ArrayBufferView,
];

export type PruneNormsArgs = [
  w: ArrayBufferView,
  dtype: number,
  rows: number,
  cols: number,
  axis: number,
  p: number,
  inputNorms: Float32Array | null,
  out: Float64Array,
];

/** The package root: dist/cjs/native.js lives two levels below it. */
export const packageRoot = path.resolve(__dirname, '..', '..');

function load(): NativeBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  let binding: NativeBinding;
  try {
    binding = nodeGypBuild(packageRoot) as NativeBinding;
  } catch (err) {
    const platform = `${process.platform}-${process.arch}`;
    throw new TensorfuseError(
      'ERR_UNSUPPORTED',
      `tensorfuse: no native binary for ${platform} (Node ${process.versions.node}, ` +
        `N-API ${process.versions.napi}). No prebuilt binary ships for this platform and none was ` +
        `built at install time (npm 11, pnpm and bun skip dependency install scripts by default). ` +
        `Either approve the build script and rebuild: ` +
        `\`npm install-scripts approve tensorfuse && npm rebuild tensorfuse\`, ` +
        `or build it from source in place: \`npm run build:native --prefix ${packageRoot}\` ` +
        `(needs python3, make and a C++17 compiler). ` +
        `Cause: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  binding.setErrorClass(TensorfuseError);
  // The buffers an Async op reads or writes stay out of the pool of disposed buffers until it
  // settles (lib/pool.ts): a tensor disposed meanwhile (which the API forbids) must not lend its
  // memory to another output while the op still uses it.
  const methods = binding as unknown as Record<string, unknown>;
  for (const key of Object.keys(methods)) {
    const f = methods[key];
    if (typeof f !== 'function' || !key.endsWith('Async')) continue;
    methods[key] = (...args: unknown[]): Promise<void> => {
      const held = holdBuffers(args);
      let done: Promise<void>;
      try {
        done = (f as (...a: unknown[]) => Promise<void>).apply(binding, args);
      } catch (e) {
        releaseBuffers(held);
        throw e;
      }
      return done.finally(() => releaseBuffers(held));
    };
  }
  return binding;
}

export const native: NativeBinding = load();

/** native/napi/quant.cc: quantized linear, quantize, dequantize (sizes are element counts). */
export type QuantWeightArgs = [
  bits: number,
  N: number,
  K: number,
  groupSize: number,
  qweight: Int8Array | Uint8Array,
  scales: Float32Array,
  zeros: Uint8Array | null,
  perm: Int32Array | null,
];
export type QuantLinearArgs = [
  x: ArrayBufferView,
  xDtype: number,
  M: number,
  ...w: QuantWeightArgs,
  bias: Float32Array | null,
  out: ArrayBufferView,
  outDtype: number,
  activation: number,
  strips?: Uint8Array | null,
];
export type QuantQuantizeArgs = [
  w: Float32Array,
  R: number,
  K: number,
  bits: number,
  groupSize: number,
  symmetric: boolean,
  qweight: Int8Array | Uint8Array,
  scales: Float32Array,
  zeros: Uint8Array | null,
];
export type QuantDequantizeArgs = [...w: QuantWeightArgs, out: Float32Array];
export interface NativeBinding {
  quantLinear(...args: QuantLinearArgs): void;
  quantLinearAsync(...args: QuantLinearArgs): Promise<void>;
  /** Bytes of the strip layout the active ISA's integer tiles read (0: none wanted). */
  quantStripsBytes(bits: number, N: number, K: number, groupSize: number): number;
  quantPackStrips(...args: [...w: QuantWeightArgs, out: Uint8Array]): void;
  quantQuantize(...args: QuantQuantizeArgs): void;
  quantQuantizeAsync(...args: QuantQuantizeArgs): Promise<void>;
  quantDequantize(...args: QuantDequantizeArgs): void;
  quantDequantizeAsync(...args: QuantDequantizeArgs): Promise<void>;
  quantUnpack(format: number, src: Int32Array | Uint8Array, N: number, K: number, dst: Int8Array | Uint8Array): void;
  quantUnpackAsync(
    format: number,
    src: Int32Array | Uint8Array,
    N: number,
    K: number,
    dst: Int8Array | Uint8Array,
  ): Promise<void>;
  quantPermute4(src: Uint8Array, N: number, K: number, perm: Int32Array, dst: Uint8Array): void;
  quantPermute4Async(src: Uint8Array, N: number, K: number, perm: Int32Array, dst: Uint8Array): Promise<void>;
}
