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
echo "== tests (release)"
ctest --test-dir "$root/build" --output-on-failure --timeout 900

echo "== build (AddressSanitizer + UBSan)"
NUPES_SANITIZE=1 bash "$root/scripts/build.sh"
echo "== tests (AddressSanitizer + UBSan)"
ctest --test-dir "$root/build-asan" --output-on-failure --timeout 1800

echo "test.sh: all tests passed in both builds ($(( $(date +%s) - start )) s)"
