#!/usr/bin/env bash
# The multi-node rehearsal on one machine: builds (release, -Werror) and runs
# tests/test_slurm_multinode.sh, a real 3-node SLURM whose nodes are network namespaces
# (slurm/multinode.sh), Open MPI over TCP between them, the run directory on the /tmp they
# share. It runs srun -N 2, a preemption that moves the job to other nodes, and two lost
# nodes (requeued by SLURM; resubmitted), each checked for codes identical to an
# uninterrupted run. Root only (namespaces, SlurmUser=root); about 2-3 minutes.
# NUPES_SANITIZE=1 runs it on the ASan + UBSan build instead. CI runs the same test
# (label slurm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
[ "${NUPES_SANITIZE:-0}" = 1 ] && build=$root/build-asan
bash "$root/scripts/build.sh"
ctest --test-dir "$build" -R '^test_slurm_multinode$' --output-on-failure --verbose --timeout 900
