#!/usr/bin/env bash
# A block group's gradient sum (mpi/group_sum.c), summed in 4 MB chunks, on 2 and 3 real
# ranks: exact sums at the chunks' edges, and on 2 ranks bit for bit what one
# MPI_Allreduce of the whole array gives (tests/tools/group_sum_check.c).
set -uo pipefail
: "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
# Under ASan, the 3-rank run's Open MPI teardown leaves allocations of unloaded
# components ("<unknown module>", which tests/lsan.supp cannot name; keeping them loaded
# with mca_base_component_disable_dlclose did not help). Leak checks are off here, as in
# test_mpi_check; the program's own two buffers per length are freed in the same function.
export ASAN_OPTIONS=detect_leaks=0
status=0
for ranks in 2 3; do
  echo "== $ranks ranks"
  "$MPIEXEC" -np "$ranks" "$NUPES_TOOLS_DIR/group_sum_check" < /dev/null || status=1
done
exit $status
