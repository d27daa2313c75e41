/**
 * tensorfuse: hand-tuned CPU and GPU kernels for transformer models.
 * The public surface is ../shared/API.md; everything exported here is part of it or extends it.
 */
export { Tensor, tensor, zeros, randn, type Device } from './tensor.js';
export type { DType } from './dtype.js';
export { TensorfuseError, type ErrorCode } from './errors.js';
export { matmul, matmulAsync, linear, linearAsync, type LinearOptions } from './ops/linear.js';
export * as backend from './backend.js';
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
