#!/usr/bin/env bash
# Quality on the bundled model: mean KL divergence to fp32 on held-out text
# (eval-generated.txt) at 4 and at 3 bits, per channel.
#  - issue "NUPES numerics": NUPES (parallel mode) < PowerQuant < RTN, and reconstruction
#    lowers every block's loss below its PowerQuant start;
#  - issue "Pipelined mode": pipelined (switch 0.8) below parallel and within 15% of
#    sequential.
# A reduced job on 2 ranks so that it also runs under the sanitizers: CALIB_SEQUENCES
# calibration sequences, ITERATIONS iterations per block, the first EVAL_SEQUENCES
# evaluation windows. The pipelined margins were checked on seeds 1-3 at these settings;
# the README's example (all 397 sequences, 500 iterations) gives the full-size numbers.
# Under the sanitizers (NUPES_SANITIZED=1, set by tests.cmake) W4 only (QUALITY_BITS): the
# W3 jobs run the same code with another code range, and the release build has already
# asserted their numbers (181 s of the ASan pass, ~half of it W3).
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_DATA:?}" "${MPIEXEC:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-quality.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

calib_sequences=${CALIB_SEQUENCES:-32}
iterations=${ITERATIONS:-150}
eval_sequences=${EVAL_SEQUENCES:-48}
seed=${SEED:-1}
bits_list=${QUALITY_BITS:-4 3}
if [ -z "${QUALITY_BITS:-}" ] && [ "${NUPES_SANITIZED:-0}" = 1 ]; then bits_list=4; fi
config="$NUPES_SOURCE_DIR/configs/stories260K.toml"
common=(--set calibration.sequences="$calib_sequences" --set reconstruction.iterations="$iterations"
        --set reconstruction.seed="$seed" --set reconstruction.switch=0.8)
eval_args=(--model "$NUPES_DATA/stories260K.bin" --tokenizer "$NUPES_DATA/tok512.bin"
           --text "$NUPES_DATA/eval-generated.txt" --seq-len 256 --sequences "$eval_sequences")

# kl_of NAME BITS METHOD MODE: quantizes on 2 ranks and evaluates; prints the mean KL.
# The jobs run without leak checks under ASan (Open MPI's dlopen'ed components leak);
# eval, which starts no MPI, keeps them.
kl_of() {
  local dir="$work/$1-w$2" kl
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIEXEC" -np 2 "$NUPES_BIN" --config "$config" "${common[@]}" --set run.dir="$dir" \
    --set quantization.bits="$2" --set quantization.method="$3" --set reconstruction.mode="$4" \
    > "$dir.log" 2>&1 || { cat "$dir.log" >&2; fail "$1 W$2 quantize failed"; }
  grep -q "^checkpoint: .* written" "$dir.log" || { cat "$dir.log" >&2; fail "$1 W$2: no checkpoint line"; }
  "$NUPES_BIN" eval "${eval_args[@]}" --checkpoint "$dir/checkpoint.h5" > "$dir.eval" 2>&1 ||
    { cat "$dir.eval" >&2; fail "$1 W$2 eval failed"; }
  kl=$(awk '/^mean KL/ { print $5 }' "$dir.eval")
  [[ "$kl" =~ ^[0-9]+\.[0-9]+$ ]] || { cat "$dir.eval" >&2; fail "$1 W$2: no KL value in eval's output"; }
  echo "$kl"
}
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

switch_step=$(awk -v n="$iterations" 'BEGIN { printf "%d", 0.8 * n + 0.5 }')
echo "settings: calibration.sequences $calib_sequences, iterations $iterations, eval --sequences" \
     "$eval_sequences, seed $seed, 2 ranks, W${bits_list// /, W}"
for bits in $bits_list; do
  rtn=$(kl_of rtn "$bits" rtn parallel)
  powerquant=$(kl_of powerquant "$bits" powerquant parallel)
  parallel=$(kl_of parallel "$bits" nupes parallel)
  pipelined=$(kl_of pipelined "$bits" nupes pipelined)
  sequential=$(kl_of sequential "$bits" nupes sequential)
  echo "W$bits KL (nats/token): rtn $rtn, powerquant $powerquant, nupes parallel $parallel," \
       "pipelined $pipelined, sequential $sequential"

  below "$parallel" "$powerquant" && below "$powerquant" "$rtn" ||
    fail "W$bits: expected KL nupes < powerquant < rtn, got $parallel $powerquant $rtn"
  # Every parallel-mode block ends below its PowerQuant start ("loss A -> B").
  blocks=$(grep -c '^block .* done' "$work/parallel-w$bits.log")
  [ "$blocks" -eq 5 ] || fail "W$bits: $blocks block lines, expected 5"
  awk '/^block .* done/ { for (i = 1; i <= NF; i++) if ($i == "->") { if (!($(i+1) < $(i-1))) bad++ } }
       END { exit bad > 0 }' "$work/parallel-w$bits.log" ||
    { grep '^block' "$work/parallel-w$bits.log"; fail "W$bits: a block's loss did not decrease"; }

  grep -q "quantized inputs from step $switch_step" "$work/pipelined-w$bits.log" ||
    { cat "$work/pipelined-w$bits.log" >&2; fail "W$bits: pipelined run did not switch at step $switch_step"; }
  ratio=$(awk -v p="$pipelined" -v s="$sequential" 'BEGIN { printf "%.3f", p / s }')
  below "$pipelined" "$parallel" || fail "W$bits: pipelined KL $pipelined is not below parallel's $parallel"
  awk -v p="$pipelined" -v s="$sequential" 'BEGIN { exit !(p <= 1.15 * s) }' ||
    fail "W$bits: pipelined KL $pipelined is not within 15% of sequential's $sequential (ratio $ratio)"
  echo "W$bits: nupes $parallel < powerquant $powerquant < rtn $rtn; pipelined $pipelined < parallel," \
       "pipelined / sequential = $ratio"
done
echo "1 passed, 0 failed"
