#!/usr/bin/env bash
# Builds the libFuzzer targets (clang + ASan + UBSan) and runs each for a fixed time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default 60 s each, every target
#
# Environment: NUPES_FUZZ_BUILD (build directory, default <repo>/build-fuzz), CC/CXX
# (default clang-14/clang++-14), NUPES_FUZZ_JOBS (build jobs, default 2), NUPES_FUZZ_ARGS
# (more libFuzzer flags, e.g. "-seed=1 -runs=300" for a reproducible short run).
# Seeds: fuzz/corpus/NAME (committed) and tests/fuzz-regressions/NAME (every input that
# ever crashed). New coverage goes to a scratch corpus that is thrown away; a crash, leak,
# timeout or failed check leaves its input in $NUPES_FUZZ_BUILD/artifacts/NAME/ and makes
# the script exit 1. Copy such an input to tests/fuzz-regressions/NAME/ after fixing the
# bug: tests/test_fuzz_regressions.c then replays it in every build.
# Prints one line per target: executions, exec/s, coverage, corpus size, result.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
seconds=${1:-60}
shift || true
build=${NUPES_FUZZ_BUILD:-$repo/build-fuzz}
export CC=${CC:-clang-14} CXX=${CXX:-clang++-14}

if ! command -v "$CC" >/dev/null || ! command -v "$CXX" >/dev/null; then
  echo "fuzz/run.sh: $CC / $CXX not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
cmake -S "$repo" -B "$build" -DNUPES_FUZZ=ON -DNUPES_SANITIZE=ON -DNUPES_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 2; }
cmake --build "$build" --target fuzz_all -j"${NUPES_FUZZ_JOBS:-2}" >"$build.build.log" 2>&1 ||
  { tail -40 "$build.build.log" >&2; exit 2; }

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$here"/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ "$name" = fuzz_common ] || targets+=("${name#fuzz_}")
  done
fi

export NUPES_DATA=${NUPES_DATA:-$repo/data}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$repo/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/nupes-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Inputs up to the largest seed (HDF5 files are tens of kB even for a tiny model).
max_len() {
  local biggest
  biggest=$(find "$here/corpus/$1" -type f -printf '%s\n' 2>/dev/null | sort -n | tail -1)
  echo $(( ${biggest:-0} > 16384 ? biggest : 16384 ))
}

failed=0
printf '%-16s %10s %8s %6s %6s  %s\n' target executions exec/s cov corpus result
for name in "${targets[@]}"; do
  bin=$build/fuzz/fuzz_$name
  [ -x "$bin" ] || { echo "fuzz/run.sh: no target $name" >&2; failed=1; continue; }
  art=$build/artifacts/$name
  mkdir -p "$art" "$scratch/corpus-$name" "$scratch/tmp-$name"
  seeds=()
  for d in "$here/corpus/$name" "$repo/tests/fuzz-regressions/$name"; do
    [ -d "$d" ] && seeds+=("$d")
  done
  log=$scratch/$name.log
  NUPES_FUZZ_TMP=$scratch/tmp-$name "$bin" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len="$(max_len "$name")" -print_final_stats=1 -artifact_prefix="$art/" \
    ${NUPES_FUZZ_ARGS:-} "$scratch/corpus-$name" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then result=ok; else result="FAILED (rc $rc, log below)"; failed=1; fi
  printf '%-16s %10s %8s %6s %6s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${corp:-?}" "$result"
  if [ $rc -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|fuzz check|Test unit written|#[0-9]+ 0x' "$log" | head -30
    cp "$log" "$art/last.log"
  fi
  rm -rf "$scratch/tmp-$name"/*
done
exit $failed
