#!/bin/bash
# tests/test_blas_kernels.sh: results do not depend on the number of threads under any
# OpenBLAS kernel this CPU can run, and a change of kernel is recorded, not ignored.
#
# Kernels: Haswell and Zen (AVX2 + FMA), SkylakeX where the CPU has AVX-512, and the one
# OpenBLAS picks in this environment if it is another (Cooperlake on an AVX-512 BF16 CPU
# with no OPENBLAS_CORETYPE set); each set through OPENBLAS_CORETYPE per run. For each:
#   - test_gemm and test_recon_fused (gemm() against double loops; products, and whole
#     reconstructions, bit-identical on 1, 2 and 3 threads; tiles exercised);
#   - a real job on a synthetic model whose products gemm() cuts into tiles
#     (d 256, f 2112, 1088 tokens a step) on 1 rank x 1, 2, 3 threads and 2 ranks x 2, 3:
#     checkpoints identical code for code, scale for scale; run.toml records the kernel;
#   - the same job stopped mid-block on 2 threads (held at its first state save) and
#     resumed on 3 threads: identical.
# Then a run stopped under one kernel and resumed under another proceeds, and says in one
# line (stderr, progress.log, the checkpoint as inspect shows it) that it is not
# bit-identical to an uninterrupted run.
#
# Under the sanitizers (NUPES_SANITIZED=1, set by tests.cmake) the per-kernel checks run
# for the kernel this environment picks (then the switch): what they add there is our
# code's memory checked, and our code does not branch on the kernel. The release build
# runs them for every kernel. On an AVX-512 machine that is 65 s of the ASan pass alone
# against 231 s beside another test.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t_start=$(rl_now)
build=${NUPES_BUILD_DIR:?NUPES_BUILD_DIR must name the build directory}

flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
kernels=()
has avx2 && has fma && kernels+=(Haswell Zen)
has avx512f && has avx512bw && has avx512vl && has avx512dq && kernels+=(SkylakeX)
[ ${#kernels[@]} -ge 1 ] || fail "this CPU has neither AVX2 nor AVX-512: no kernel to test"
native=$("$NUPES_BIN" --version | sed -n 's/.*kernel \([A-Za-z0-9]*\),.*/\1/p')
[ -n "$native" ] || fail "nupes-mpi --version names no kernel"
[[ " ${kernels[*]} " == *" $native "* ]] || kernels+=("$native")
echo "kernels this CPU can run: ${kernels[*]} (this environment's: $native)"
checked=("${kernels[@]}")
if [ "${NUPES_SANITIZED:-0}" = 1 ]; then
  checked=("$native")
  echo "sanitizer build: per-kernel checks for $native only"
fi

"$NUPES_TOOLS_DIR/make_synthetic_model" "$RL_WORK/wide.bin" 256 2112 1 4 2 512 136 3 >/dev/null ||
  fail "make_synthetic_model"
# 8 sequences of 136 tokens, batch 8: every step's products have 1088 rows (2 tiles of
# rows), w1 and w3 2112 columns (2 tiles of columns).
job_args() {
  ARGS=(--config "$src/configs/stories260K.toml" --set "model.path=$RL_WORK/wide.bin"
    --set "tokenizer.path=$NUPES_DATA/tok512.bin" --set "calibration.text=$NUPES_DATA/calib-generated.txt"
    --set calibration.sequences=8 --set calibration.seq_len=136 --set reconstruction.batch=8
    --set reconstruction.iterations=4 --set run.checkpoint_interval=0.001 --set output.zstd_level=1
    --set "run.dir=$1")
}

# rl_start with the kernel and thread count of this run.
run_with() {
  local kernel=$1 threads=$2 name=$3 np=$4
  shift 4
  OPENBLAS_CORETYPE=$kernel OPENBLAS_NUM_THREADS=$threads rl_start "$name" "$np" "$@"
}

for kernel in "${checked[@]}"; do
  echo "== kernel $kernel"
  got=$(OPENBLAS_CORETYPE=$kernel "$NUPES_BIN" --version | sed -n 's/.*kernel \([A-Za-z0-9]*\),.*/\1/p')
  [ "$got" = "$kernel" ] || fail "OPENBLAS_CORETYPE=$kernel runs kernel '$got'"
  for t in test_gemm test_recon_fused; do
    OPENBLAS_CORETYPE=$kernel "$build/$t" >"$RL_WORK/$t-$kernel.txt" 2>&1 ||
      fail "$t under $kernel: $(grep -E 'FAILED|ERROR|LINE' "$RL_WORK/$t-$kernel.txt" | head -n 5)"
  done
  echo "  test_gemm, test_recon_fused: pass"

  ref=
  for run in 1:1 1:2 1:3 2:2 2:3; do
    np=${run%:*} threads=${run#*:}
    name=$kernel-np$np-t$threads
    job_args "$RL_WORK/$name"
    run_with "$kernel" "$threads" "$name" "$np" "${ARGS[@]}"
    rl_finish
    rl_expect_rc 0
    grep -qx "kernel = \"$kernel\"" "$RL_WORK/$name/run.toml" || fail "$name: run.toml does not record kernel $kernel"
    grep -qx "threads_per_rank = $threads" "$RL_WORK/$name/run.toml" || fail "$name: run.toml does not record $threads threads"
    if [ -z "$ref" ]; then ref=$RL_WORK/$name/checkpoint.h5; else rl_same_codes "$ref" "$RL_WORK/$name/checkpoint.h5"; fi
  done
  echo "  jobs on 1 rank x 1, 2, 3 threads and 2 ranks x 2, 3 threads: identical checkpoints"

  name=$kernel-stop
  job_args "$RL_WORK/$name"
  RL_HOLD=state-saved:0000
  run_with "$kernel" 2 "$name" 1 "${ARGS[@]}"
  rl_freeze_when_saved "$RL_WORK/$name" 0000 0
  rl_signal TERM 0
  rl_finish
  rl_expect_rc 75
  run_with "$kernel" 3 "$name-resume" 1 "${ARGS[@]}"
  rl_finish
  rl_expect_rc 0
  grep -qi warning "$RL_WORK/$name-resume.err" && fail "$name-resume: unexpected warning: $(cat "$RL_WORK/$name-resume.err")"
  rl_same_codes "$ref" "$RL_WORK/$name/checkpoint.h5"
  echo "  stopped on 2 threads, resumed on 3: identical"
done

if [ ${#kernels[@]} -ge 2 ]; then
  first=${kernels[0]} second=${kernels[1]}
  echo "== stopped under $first, resumed under $second"
  name=switch
  job_args "$RL_WORK/$name"
  RL_HOLD=state-saved:0000
  run_with "$first" 1 "$name" 1 "${ARGS[@]}"
  rl_freeze_when_saved "$RL_WORK/$name" 0000 0
  rl_signal TERM 0
  rl_finish
  rl_expect_rc 75
  run_with "$second" 1 "$name-resume" 1 "${ARGS[@]}"
  rl_finish
  rl_expect_rc 0
  line="BLAS kernel $second, but this run started on $first (run.toml): from here on the result is not bit-identical to an uninterrupted run on $first"
  [ "$(grep -c 'not bit-identical' "$RL_WORK/$name-resume.err")" = 1 ] ||
    fail "$name-resume: expected one warning line on stderr, got: $(cat "$RL_WORK/$name-resume.err")"
  grep -qF "$line" "$RL_WORK/$name-resume.err" || fail "$name-resume: stderr: $(cat "$RL_WORK/$name-resume.err")"
  grep -qF "warning: $line" "$RL_WORK/$name/progress.log" || fail "$name: progress.log lacks the warning"
  out=$("$NUPES_BIN" inspect "$RL_WORK/$name/checkpoint.h5" 2>&1) || fail "inspect: $out"
  [[ $out == *"WARNING:"*"not bit-identical"* ]] || fail "inspect does not show the kernel change: $out"
  [[ $out == *"kernel $second"* ]] || fail "inspect does not show kernel $second: $out"
  out=$(OPENBLAS_CORETYPE=$second "$NUPES_BIN" inspect "$RL_WORK/$name" 2>&1) || fail "inspect run dir: $out"
  [[ $out == *"blas kernel:  $first at start"*"not be bit-identical"* ]] || fail "inspect run dir: $out"
  echo "  the resume warned once (stderr, progress.log) and the checkpoint says so"
fi
echo "PASS: test_blas_kernels ($(rl_seconds_since "$t_start") s)"
