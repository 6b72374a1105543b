#!/usr/bin/env bash
# CI smoke run of the fuzz targets (fuzz/run.sh) under ASan + UBSan: every text/binary
# parser fuzzes for NUPES_FUZZ_SMOKE_SECONDS (default 10 s; developers run fuzz/run.sh
# with its 60 s default or longer). The two HDF5 readers run a fixed, seeded 400 inputs:
# open-ended mutation of HDF5 files eventually reaches crashes and hangs inside libhdf5
# 1.10.8 itself (global heap decoding, see fuzz/known-libhdf5/README.md) that no code of
# ours can prevent, and CI must not fail at random on them.
# Needs clang-14 + libclang-rt-14-dev (scripts/install-deps.sh installs them).
set -euo pipefail
src=${NUPES_SOURCE_DIR:?}
build=${NUPES_BUILD_DIR:?}-fuzz-smoke
seconds=${NUPES_FUZZ_SMOKE_SECONDS:-10}
command -v clang-14 >/dev/null || { echo "FAIL: clang-14 missing: run scripts/install-deps.sh"; exit 1; }

# ctest's sanitizer options are for the asan build; run.sh sets its own.
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
export NUPES_FUZZ_BUILD=$build
"$src/fuzz/run.sh" "$seconds" config hf_model llama2c safetensors tokenize_text tokenizer_file
NUPES_FUZZ_ARGS="-seed=1 -runs=400" "$src/fuzz/run.sh" 120 state_file checkpoint
echo "PASS: fuzz smoke"
