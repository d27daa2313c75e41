#!/bin/bash
# Alternates timing binaries for a few rounds and prints each one's best and median: the way
# versions of a kernel are compared on a box whose speed drifts (bench/NOTES.md). Each binary is
# run once per round with the same arguments and must print "...: <time> us ..." (attention_ticks
# does). Example, two builds of attention_ticks, 6 rounds, REPS passed through:
#   REPS=200 bench/micro/ab.sh 6 "32 8 1 256 128 1" /tmp/at_old /tmp/at_new
rounds=$1
args=$2
shift 2
for r in $(seq "$rounds"); do
  for b in "$@"; do
    t=$("$b" $args | sed -E 's/.*: ([0-9.]+) us.*/\1/')
    echo "$b $t"
  done
done | python3 -c '
import sys, statistics
times = {}
for line in sys.stdin:
    b, t = line.split()
    times.setdefault(b, []).append(float(t))
for b, v in times.items():
    print("%-24s best %9.1f  median %9.1f" % (b, min(v), statistics.median(v)))'
