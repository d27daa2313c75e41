// Run in a fresh child process by bench/lib/machine.mjs: the time from `require('tensorfuse')`
// (addon load included) to the end of the first op, as a user's first call would see it.
// Prints one JSON line. Node's own start-up is before t0 and is not counted.
'use strict';
const t0 = process.hrtime.bigint();
const tf = require('tensorfuse');
const t1 = process.hrtime.bigint();
const a = tf.tensor(new Float32Array(64 * 64).fill(0.5), [64, 64]);
const y = tf.matmul(a, a);
const first = y.data()[0];
const t2 = process.hrtime.bigint();
if (first !== 16) throw new Error(`load-time probe: wrong matmul result ${first}`);
const ms = (d) => Number(d) / 1e6;
process.stdout.write(JSON.stringify({ requireMs: ms(t1 - t0), firstOpMs: ms(t2 - t1), totalMs: ms(t2 - t0) }) + '\n');
