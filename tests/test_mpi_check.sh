#!/usr/bin/env bash
# MPI_CHECK's error path is live (io/mpi_check.h): with MPI_ERRORS_RETURN set after
# MPI_Init, a real MPI error (a send to a rank that does not exist, on a split
# communicator) comes back to MPI_CHECK, which names the rank, the call, the source line
# and MPI's reason, and ends every rank with exit code 3 (never a hang).
set -uo pipefail
: "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
export ASAN_OPTIONS=detect_leaks=0 # the job is aborted on purpose; Open MPI's teardown is not the subject
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$MPIEXEC" -np 2 "$NUPES_TOOLS_DIR/mpi_error" < /dev/null > "$work/out.txt" 2> "$work/err.txt"
rc=$?
cat "$work/err.txt"
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
[ "$rc" -eq 3 ] || fail "exit code $rc, expected 3 (MPI_CHECK's abort)"
grep -Eq '^nupes-mpi: rank 0: MPI_Send\(.*\) failed at .*mpi_error\.c:[0-9]+: .*rank' "$work/err.txt" ||
  fail "MPI_CHECK's message (rank, call, line, MPI's reason) is missing"
grep -q "returned without an error" "$work/out.txt" && fail "the invalid send was not reported"
# Control: without mpi_errors_return, MPI's default handler aborts inside the call and
# MPI_CHECK never runs (this is what the program did before): the test tells them apart.
"$MPIEXEC" -np 2 "$NUPES_TOOLS_DIR/mpi_error" fatal < /dev/null > /dev/null 2> "$work/fatal.txt"
rc=$?
[ "$rc" -ne 0 ] || fail "the invalid send succeeded under the default handler"
grep -q "failed at" "$work/fatal.txt" && fail "MPI_CHECK ran under the default handler: the control is wrong"
echo "1 passed, 0 failed"
