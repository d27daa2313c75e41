/**
 * The one loader of the native addon. node-gyp-build looks for, in order, a local build
 * (build/Release) and a prebuilt binary shipped in prebuilds/<platform>-<arch>/; when neither
 * fits, the error says exactly how to get one.
 */
import * as path from 'node:path';
import { TensorfuseError } from './errors.js';

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
  setThreads(n: number): void;
  setIsa(isa: string): void;
  probeFma(threads: number, iters: number): number;
  probeBandwidth(threads: number, bytes: number, reps: number): number;
  convert(src: ArrayBufferView, srcDtype: number, dst: ArrayBufferView, dstDtype: number, n: number): void;
  gemm(...args: GemmArgs): void;
  gemmAsync(...args: GemmArgs): Promise<void>;
}

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
