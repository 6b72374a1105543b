#!/usr/bin/env bash
# Quality on the bundled model (issue 4): mean KL divergence to fp32 on held-out text must
# order NUPES < PowerQuant < RTN at 4 and at 3 bits (per channel), and reconstruction must
# lower every block's loss below its PowerQuant starting loss. A reduced job (fewer
# calibration sequences, iterations and evaluation windows than the README's example) so
# that it also runs under the sanitizers; the ordering must hold all the same.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
config="$NUPES_SOURCE_DIR/configs/stories260K.toml"
common=(--set calibration.sequences=64 --set reconstruction.iterations=150)
eval_args=(--model "$NUPES_DATA/stories260K.bin" --tokenizer "$NUPES_DATA/tok512.bin"
           --text "$NUPES_DATA/eval-generated.txt" --seq-len 256 --sequences 48)

kl_of() { awk '/^mean KL/ {print $5}' "$1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

for bits in 4 3; do
  declare -A kl=()
  for method in rtn powerquant nupes; do
    dir="$work/$method-w$bits"
    # (jobs without leak checks: Open MPI's components leak; eval below keeps them)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$MPIEXEC" -np 2 "$NUPES_BIN" --config "$config" "${common[@]}" --set run.dir="$dir" \
      --set quantization.method=$method --set quantization.bits=$bits > "$dir.log" 2>&1 \
      || { cat "$dir.log"; fail "$method W$bits quantize exited $?"; }
    "$NUPES_BIN" eval "${eval_args[@]}" --checkpoint "$dir/checkpoint.h5" > "$dir.eval" 2>&1 \
      || { cat "$dir.eval"; fail "$method W$bits eval failed"; }
    kl[$method]=$(kl_of "$dir.eval")
    [ -n "${kl[$method]}" ] || { cat "$dir.eval"; fail "no KL line for $method W$bits"; }
    echo "W$bits $method: KL ${kl[$method]} nats/token"
  done
  # Every NUPES block ends below its PowerQuant start ("loss A -> B").
  blocks=$(grep -c '^block .* done' "$work/nupes-w$bits.log")
  [ "$blocks" -eq 5 ] || fail "W$bits: $blocks block lines, expected 5"
  awk '/^block .* done/ { for (i = 1; i <= NF; i++) if ($i == "->") { if (!($(i+1) < $(i-1))) bad++ } }
       END { exit bad > 0 }' "$work/nupes-w$bits.log" || { grep '^block' "$work/nupes-w$bits.log"; fail "W$bits: a block's loss did not decrease"; }
  awk -v n="${kl[nupes]}" -v p="${kl[powerquant]}" -v r="${kl[rtn]}" 'BEGIN { exit !(n < p && p < r) }' \
    || fail "W$bits: expected KL nupes < powerquant < rtn, got ${kl[nupes]} ${kl[powerquant]} ${kl[rtn]}"
  echo "W$bits: ordering holds: nupes ${kl[nupes]} < powerquant ${kl[powerquant]} < rtn ${kl[rtn]}"
  unset kl
done
echo "1 passed, 0 failed"
