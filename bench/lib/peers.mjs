// Peers: other runtimes timed beside tensorfuse. They are devDependencies, loaded here only if
// present; a missing one is reported with a line and its rows are skipped (../../../shared/BENCH.md).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** { ort, ortError }: onnxruntime-node's module, or why it could not be loaded. */
export function loadPeers() {
  try {
    const ort = require('onnxruntime-node');
    return { ort, ortError: null };
  } catch (err) {
    return { ort: null, ortError: String(err?.message ?? err).split('\n')[0] };
  }
}

/**
 * An ORT CPU session for a model built in code, with the thread settings of a row:
 * intra-op = the row's thread count, inter-op = 1, sequential, all graph optimizations, and idle
 * intra-op workers blocking instead of spinning (session.intra_op.allow_spinning = 0). With ORT's
 * default its workers keep spinning on the other core after each run, and whatever is timed next
 * in the alternated rounds pays for it: tensorfuse's 2-thread int4 GEMV took 2.4-3.1 ms right
 * after an ORT run instead of 1.7 ms. ORT's other defaults (arena, ...) are kept.
 */
export async function ortSession(ort, modelBytes, threads) {
  return ort.InferenceSession.create(modelBytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}
