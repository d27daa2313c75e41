/**
 * tensorfuse: hand-tuned CPU and GPU kernels for transformer models.
 * The public surface is ../shared/API.md; everything exported here is part of it or extends it.
 */
export { Tensor, tensor, zeros, randn, type Device } from './tensor.js';
export type { DType } from './dtype.js';
export { TensorfuseError, type ErrorCode } from './errors.js';
export { matmul, matmulAsync, linear, linearAsync, type LinearOptions } from './ops/linear.js';
export { attention, attentionAsync, type AttentionOptions } from './ops/attention.js';
export * as backend from './backend.js';
export * as moe from './ops/moe.js';
export type { Routing, RouteOptions, FfnWeights, FfnOptions } from './ops/moe.js';
export * as prune from './prune.js';
export type { SparseTensor } from './ops/prune.js';
export {
  quantize,
  quantizeAsync,
  dequantize,
  dequantizeAsync,
  fromGPTQ,
  fromGPTQAsync,
  fromAWQ,
  fromAWQAsync,
  fromGGML,
  fromGGMLAsync,
  sliceExpert,
  type QTensor,
  type QuantizeOptions,
  type GPTQParams,
  type AWQParams,
} from './ops/quant.js';
