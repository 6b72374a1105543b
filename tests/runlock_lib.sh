# tests/runlock_lib.sh: helpers for the run directory tests (test_run_lock.sh,
# test_run_complete.sh, test_run_fingerprint.sh), on top of tests/resume_lib.sh (source
# that first).
#
#   rk_run NAME NP ARGS...   run `mpirun -np NP nupes-mpi ARGS...` in the foreground WITHOUT
#                            touching the background job resume_lib tracks (RL_PID...):
#                            a second job beside the first; its exit code in $RK_RC,
#                            stdout/stderr in $RL_WORK/NAME.out / NAME.err
#   rk_expect NAME RC [REGEX]  fail unless $RK_RC is RC and (when given) NAME.err has a
#                            line matching REGEX
#   rk_args DIR KEY=VALUE...   rl_job_args DIR plus --set KEY=VALUE for each

rk_run() {
  local name=$1 np=$2
  shift 2
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIEXEC" -np "$np" "$NUPES_BIN" "$@" >"$RL_WORK/$name.out" 2>"$RL_WORK/$name.err"
  RK_RC=$?
}

rk_expect() {
  local name=$1 want=$2 re=${3:-}
  [ "$RK_RC" = "$want" ] || fail "$name: exit $RK_RC, expected $want: $(grep -m2 -i error "$RL_WORK/$name.err")"
  if [ -n "$re" ]; then
    grep -qE -- "$re" "$RL_WORK/$name.err" || fail "$name: no line matching '$re' in: $(cat "$RL_WORK/$name.err")"
  fi
  return 0
}

rk_args() {
  local dir=$1 kv
  shift
  rl_job_args "$dir"
  for kv in "$@"; do printf '%s\n' --set "$kv"; done
}
