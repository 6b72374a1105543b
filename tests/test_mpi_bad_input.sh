#!/usr/bin/env bash
# Bad MPI layouts are input errors: mpi.data_parallel = 2 on 3 ranks (2 does not divide
# 3) exits 2 on every rank, with one clear message on stderr (printed once, not once per
# rank), and leaves nothing behind (no run directory).
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${MPIEXEC:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-bad.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Under AddressSanitizer, leaks of Open MPI's dlopen'ed components are not this test's
# subject (as in the other MPI tests); the tools keep leak detection.
job_asan=detect_leaks=0

config=$NUPES_SOURCE_DIR/configs/stories260K.toml
rc=0
ASAN_OPTIONS=$job_asan "$MPIEXEC" -np 3 "$NUPES_BIN" --config "$config" --set run.dir="$work/run" --set mpi.data_parallel=2 \
  > "$work/out.txt" 2> "$work/err.txt" || rc=$?
cat "$work/err.txt"
[ "$rc" = 2 ] || fail "exit status $rc, expected 2"
message="mpi.data_parallel = 2 does not divide the 3 ranks"
n=$(grep -c "$message" "$work/err.txt" || true)
[ "$n" = 1 ] || fail "the message '$message' appears $n times on stderr, expected once"
grep -q "MPI_ERR\|MPI_ABORT\|Segmentation\|AddressSanitizer" "$work/err.txt" && fail "not a clean exit"
[ ! -e "$work/run" ] || fail "a run directory was created"
echo "PASS: data_parallel 2 on 3 ranks: exit 2 and one clear message"
