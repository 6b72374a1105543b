#!/usr/bin/env bash
# Configures and builds into BUILD_DIR (default build/); extra arguments go to cmake.
# NUPES_SANITIZE=1 builds with AddressSanitizer + UBSan into build-asan/ by default.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${NUPES_SANITIZE:-0}" = 1 ]; then
  build=${BUILD_DIR:-$root/build-asan}
  set -- -DNUPES_SANITIZE=ON "$@"
else
  build=${BUILD_DIR:-$root/build}
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "build: $build"
