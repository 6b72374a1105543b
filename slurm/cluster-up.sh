#!/bin/bash
# slurm/cluster-up.sh STATE_DIR: start a throw-away single-node SLURM (munged, slurmctld,
# slurmd) whose config, munge key, spool, logs and pid files all live in STATE_DIR (which
# must not hold a cluster already). Prints the line to paste into a shell:
#     export SLURM_CONF=STATE_DIR/slurm.conf
# Stop it with slurm/cluster-down.sh STATE_DIR. Needs root (SlurmUser=root). See testlib.sh.
set -u
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
. "$(dirname "$(readlink -f "$0")")/testlib.sh"
if ! cluster_up "$1"; then
  cluster_down "$1" >/dev/null 2>&1
  exit 1
fi
echo "export SLURM_CONF=$SLURM_CONF"
