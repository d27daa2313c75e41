/** backend: what this build and machine offer, and the knobs of the native pool. */
import { describe, fail } from './errors.js';
import { native } from './native.js';
import { pooledBytes, releaseMemory as releasePool } from './pool.js';

export interface BackendInfo {
  version: string;
  cpu: {
    features: string[];
    threads: number;
    /** Instruction-set level the kernels dispatch to now ('avx512', 'avx2', 'neon', 'generic'). */
    isa: string;
    /** Every level this CPU and build can run (tests hold each fast path to 'generic'). */
    isas: string[];
    model: string;
  };
  cuda: { available: boolean; devices: { name: string; capability: string; memory: number }[] };
  /**
   * mallocTuned: glibc serves every buffer from its heap and keeps freed ones mapped for reuse,
   * so outputs and packing buffers do not page-fault at every call (set at load on glibc
   * systems; TENSORFUSE_MALLOC_TUNING=0 keeps glibc's defaults). pooledBytes: memory of disposed
   * tensors kept for the next outputs of the same size (TENSORFUSE_POOL_MB, releaseMemory()).
   */
  memory: { mallocTuned: boolean; pooledBytes: number };
}

/** The build, the CPU (features, threads, kernel level) and the CUDA devices. */
export function info(): BackendInfo {
  const n = native.info();
  return {
    version: n.version,
    cpu: { features: n.features, threads: n.threads, isa: n.isa, isas: n.isas, model: n.model },
    cuda: { available: false, devices: [] },
    memory: { mallocTuned: native.mallocTuned === true, pooledBytes: pooledBytes() },
  };
}

/**
 * Gives back the memory that disposed tensors left for reuse (lib/pool.ts: dispose() keeps large
 * buffers, up to TENSORFUSE_POOL_MB, for the next outputs of the same size); returns its bytes.
 */
export function releaseMemory(): number {
  return releasePool();
}

/** Threads of the native pool (the caller included); also TENSORFUSE_THREADS at load. */
export function setThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024)
    fail('ERR_ARG', "backend.setThreads: argument 'n'", `expected an integer in [1, 1024], got ${describe(n)}`);
  native.setThreads(n);
}

/**
 * Forces the kernel level ('generic', 'avx2', 'avx512', 'neon') or restores the best one
 * ('auto'); also TENSORFUSE_ISA at load. Meant for tests and benchmarks: 'generic' is the
 * scalar reference path.
 */
export function setIsa(isa: string): void {
  if (typeof isa !== 'string')
    fail('ERR_ARG', "backend.setIsa: argument 'isa'", `expected a string, got ${describe(isa)}`);
  native.setIsa(isa === 'auto' ? native.info().bestIsa : isa);
}
