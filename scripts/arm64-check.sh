#!/usr/bin/env bash
# Cross-compiles the core and its C++ checks for arm64 (Debian's aarch64-linux-gnu-g++) and runs
# them under qemu-user, so the NEON kernels are held to the generic path on every CI run even
# though CI is x86-64. Needs: apt-get install g++-aarch64-linux-gnu qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-arm64
mkdir -p "$out"
printf '*\n' > "$out/.gitignore"
srcs=$(ls native/core/*.cc native/cpu/*/*.cc native/tests/*.cc)
aarch64-linux-gnu-g++ -std=c++17 -O2 -Wall -Inative/include -pthread $srcs -o "$out/tensorfuse_core_tests"
# qemu's emulated cores are slow: the checks still cover every ISA the binary reports (generic, neon).
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/tensorfuse_core_tests" "$@"
