#!/usr/bin/env bash
# Builds the benchmarks and runs every one of them (docs/design.md 9), printing their
# tables. Usage: bash bench/run_all.sh [build-dir]   (default: build-bench)
# Each benchmark measures its own reference in the same run (sgemm peak, plain write), so
# the ratios hold on a shared, noisy machine; absolute figures do not.
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$src/build-bench}"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j2 --target bench_block_iteration bench_search bench_checkpoint \
      bench_capture bench_allreduce H5Zzstd > /dev/null
cd "$build"
export HDF5_PLUGIN_PATH="$build/plugins"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

# OpenBLAS sizes its thread pool at start-up: start with 2, the bench switches 1 <-> 2.
OPENBLAS_NUM_THREADS=2 ./bench_block_iteration --threads 1,2
OPENBLAS_NUM_THREADS=1 ./bench_search
mpiexec -np 2 ./bench_allreduce
OPENBLAS_NUM_THREADS=1 ./bench_checkpoint --model "$src/data/stories260K.bin"
for ranks in 1 2; do
  OPENBLAS_NUM_THREADS=1 mpiexec -np "$ranks" ./bench_capture | grep -v '^capture: level'
done
