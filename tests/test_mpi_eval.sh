#!/usr/bin/env bash
# eval under MPI (DESIGN.md 7): the windows are split over the ranks and the sums meet on
# root; 1 process and 3 ranks must print the same perplexities, KL and top-1 (the sums
# differ only in their order, far below the printed precision), and a bad input exits 2.
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_DATA:?}" "${MPIEXEC:?}"
export ASAN_OPTIONS=detect_leaks=0 # Open MPI's dlopen'ed components leak; not this test's subject
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-eval.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
args=(eval --model "$NUPES_DATA/stories260K.bin" --tokenizer "$NUPES_DATA/tok512.bin"
      --text "$NUPES_DATA/eval-generated.txt" --seq-len 128 --sequences 40 --checkpoint "$NUPES_DATA/stories260K.bin")
"$NUPES_BIN" "${args[@]}" > "$work/one.txt" || fail "eval on 1 process failed"
"$MPIEXEC" -np 3 "$NUPES_BIN" "${args[@]}" > "$work/three.txt" || fail "eval on 3 ranks failed"
metrics() { grep -E '^(windows|fp32 perplexity|quantized perplexity|mean KL|top-1)' "$1"; }
diff <(metrics "$work/one.txt") <(metrics "$work/three.txt") || fail "1 process and 3 ranks disagree"
[ "$(metrics "$work/three.txt" | wc -l)" -eq 5 ] || { cat "$work/three.txt"; fail "missing result lines"; }
rc=0
"$MPIEXEC" -np 2 "$NUPES_BIN" eval --model "$work/missing.bin" --tokenizer "$NUPES_DATA/tok512.bin" \
  --text "$NUPES_DATA/eval-generated.txt" > /dev/null 2> "$work/err.txt" || rc=$?
[ "$rc" -eq 2 ] || fail "missing model under mpirun exited $rc, expected 2"
[ "$(grep -c 'missing.bin' "$work/err.txt")" -eq 1 ] || { cat "$work/err.txt"; fail "the error must be printed once"; }
metrics "$work/three.txt"
echo "1 passed, 0 failed"
