#!/bin/bash
# slurm/cluster-down.sh STATE_DIR: stop the cluster that cluster-up.sh started in STATE_DIR:
# cancel its jobs, stop slurmd, slurmctld and munged by their recorded pids (SIGTERM, then
# SIGKILL after a timeout), then any leftover step or task of that cluster. Exits 1 if a
# process of the cluster is still alive. The directory (logs) is left in place.
set -u
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
. "$(dirname "$(readlink -f "$0")")/testlib.sh"
cluster_down "$1"
