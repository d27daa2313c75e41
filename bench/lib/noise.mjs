// How busy the rest of the machine was while we measured: the CPU time of every other process
// (and the hypervisor's steal) as a share of all cores over an interval. Linux /proc/stat only;
// null elsewhere. The machines are shared (BENCH.md), so rows carry this next to their times.
import fs from 'node:fs';
import os from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every mainstream Linux build

function busyTicks() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    // cpu user nice system idle iowait irq softirq steal guest guest_nice
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] ?? 0);
  } catch {
    return null;
  }
}

export function cpuMark() {
  return { busy: busyTicks(), self: process.cpuUsage(), t: performance.now() };
}

/** Share (0..1) of all hardware threads used by other processes between two marks. */
export function othersShare(m0, m1 = cpuMark()) {
  if (m0.busy === null || m1.busy === null) return null;
  const wall = (m1.t - m0.t) / 1e3;
  if (wall <= 0) return null;
  const hw = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const busy = (m1.busy - m0.busy) / TICKS_PER_SECOND;
  const self = (m1.self.user - m0.self.user + m1.self.system - m0.self.system) / 1e6;
  return Math.min(1, Math.max(0, busy - self) / (wall * hw));
}
