#!/usr/bin/env bash
# A block group's gradient sum (mpi/group_sum.c), summed in 4 MB chunks, on 2 and 3 real
# ranks: exact sums at the chunks' edges, and on 2 ranks bit for bit what one
# MPI_Allreduce of the whole array gives (tests/tools/group_sum_check.c).
set -uo pipefail
: "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
status=0
for ranks in 2 3; do
  echo "== $ranks ranks"
  "$MPIEXEC" -np "$ranks" "$NUPES_TOOLS_DIR/group_sum_check" < /dev/null || status=1
done
exit $status
