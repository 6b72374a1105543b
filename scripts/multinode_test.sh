#!/usr/bin/env bash
# The multi-node rehearsal on one machine: builds (release, -Werror) and runs
# tests/multinode/run.sh, a real 3-node SLURM whose nodes are network namespaces
# (slurm/multinode.sh), Open MPI over TCP between them, the run directory on the /tmp they
# share: sbatch --cpus-per-task threads on both nodes, srun -N 2, a preemption that moves
# the job to other nodes, and two lost nodes (requeued by SLURM; resubmitted), each checked
# for codes identical to an uninterrupted run. Root only (namespaces, SlurmUser=root).
# About 1.5 minutes on the 2-core AVX-512 machine (1.7 with NUPES_SANITIZE=1), 3 on the AVX2 one (6 with it)
# (NUPES_SANITIZE=1: the ASan + UBSan build). CI does not run it: the suite is near its
# 30-minute limit on the AVX2 machines already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
[ "${NUPES_SANITIZE:-0}" = 1 ] && build=$root/build-asan
bash "$root/scripts/build.sh"
# The environment ctest gives the tests (tests/tests.cmake).
export NUPES_SOURCE_DIR=$root NUPES_BUILD_DIR=$build NUPES_BIN=$build/nupes-mpi
export NUPES_DATA=$root/data NUPES_TOOLS_DIR=$build/tools MPIEXEC=${MPIEXEC:-mpiexec}
export HDF5_PLUGIN_PATH=$build/plugins OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec bash "$root/tests/multinode/run.sh"
