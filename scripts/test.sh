#!/usr/bin/env bash
# The README's test command: installs the Debian packages, builds with -Werror, runs every
# test, then builds again with AddressSanitizer + UBSan and runs every test again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
bash "$root/scripts/install-deps.sh"
export OPENBLAS_NUM_THREADS=1

echo "== build (release, -Werror)"
bash "$root/scripts/build.sh"
# Two tests at a time: most real-process tests spend their time waiting on files, signals
# or SLURM; those that start daemons are RUN_SERIAL. NUPES_TEST_JOBS overrides.
jobs=${NUPES_TEST_JOBS:-2}
echo "== tests (release)"
ctest --test-dir "$root/build" --output-on-failure --timeout 2700 -j"$jobs"

echo "== build (AddressSanitizer + UBSan)"
NUPES_SANITIZE=1 bash "$root/scripts/build.sh"
# test_fuzz_smoke builds its own clang + ASan + UBSan targets whatever the build: it has
# run under the sanitizers in the first pass, so it is not repeated here.
echo "== tests (AddressSanitizer + UBSan)"
ctest --test-dir "$root/build-asan" --output-on-failure --timeout 2700 -j"$jobs" -E '^test_fuzz_smoke$'

echo "test.sh: all tests passed in both builds ($(( $(date +%s) - start )) s)"
