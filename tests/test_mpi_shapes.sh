#!/usr/bin/env bash
# Rank counts that do not fit the block count (docs/design.md 4), on synthetic llama2.c models
# (tests/tools/make_synthetic_model, vocab 512 for the bundled tok512 tokenizer):
#   - 3 ranks, 2 blocks, data_parallel 1: 3 groups, one of them idles;
#   - 3 ranks, 2 blocks, data_parallel auto: the smallest D with R / D <= 2 is D = 3;
#   - 2 ranks, 5 blocks (not divisible: groups get 3 and 2 blocks);
#   - 4 ranks (oversubscribed on 2 cores), 3 blocks, data_parallel 1: one group idles.
#   - 2 ranks, a d 48 model, 9 sequences of 48 tokens: shards of 4 and 5 sequences where
#     one process has all 9; one sequence is a tiny product that OpenBLAS rounds
#     differently in a batch, so the capture must not batch by shard (it once did: scales
#     differed by 2e-7 between 1 process and 2 ranks).
#   - ragged groups: group_size 20 on rows of 32 and 96 inputs (last groups of 12 and 16),
#     on 1 process and 2 ranks (parallel mode); the checkpoint is inspected, exported to
#     llama2.c and the export evaluated against the checkpoint (KL exactly 0: the readers
#     agree on which scale covers which column).
# Every run must finish with a complete checkpoint whose every block lowered its loss, and
# the D = 1 runs must equal a single process bit for bit.
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_DATA:?}" "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-shapes.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Under AddressSanitizer, leaks of Open MPI's dlopen'ed components are not this test's
# subject (as in the other MPI tests); the tools keep leak detection.
job_asan=detect_leaks=0

config=$NUPES_SOURCE_DIR/configs/stories260K.toml
fast=(--set reconstruction.iterations=20 --set calibration.sequences=12 --set calibration.seq_len=32)

# model NAME LAYERS SEED [DIM HIDDEN HEADS KV]: default d 32, f 96, 4 heads (2 kv); vocab 512,
# seq_len 64.
model() {
  "$NUPES_TOOLS_DIR/make_synthetic_model" "$work/$1.bin" "${4:-32}" "${5:-96}" "$2" "${6:-4}" "${7:-2}" 512 64 \
    "$3" > /dev/null || fail "cannot make the synthetic model $1"
}

# run_job NAME MODEL NP DP [--set ...]: NP = 0 runs without mpirun.
run_job() {
  local name=$1 m=$2 np=$3 dp=$4
  shift 4
  local launch=()
  [ "$np" -gt 0 ] && launch=("$MPIEXEC" -np "$np")
  if ! ASAN_OPTIONS=$job_asan "${launch[@]}" "$NUPES_BIN" --config "$config" --set model.path="$work/$m.bin" \
       --set run.dir="$work/$name" --set mpi.data_parallel="$dp" "${fast[@]}" "$@" > "$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name: the job failed"
  fi
  "$NUPES_TOOLS_DIR/checkpoint_losses" "$work/$name/checkpoint.h5" > "$work/$name.losses" ||
    { cat "$work/$name.losses" >&2; fail "$name: incomplete checkpoint or a loss did not drop"; }
  echo "$name: $(grep -o '[0-9]* ranks\?, [0-9]* groups\? of [0-9]*' "$work/$name.log" | head -1 || true)," \
       "$(wc -l < "$work/$name.losses") blocks"
}

same() { # A B: bit-identical checkpoints
  "$NUPES_TOOLS_DIR/compare_checkpoints" "$work/$1/checkpoint.h5" "$work/$2/checkpoint.h5" > "$work/cmp.txt" ||
    { cat "$work/cmp.txt" >&2; fail "$2 differs from $1"; }
}

expect_layout() { # NAME TEXT
  grep -q "$2" "$work/$1.log" || fail "$1: expected '$2' in the log"
}

model two 2 11
model five 5 12
model three 3 13

run_job two_ref two 0 1
run_job two_np3_d1 two 3 1
expect_layout two_np3_d1 "3 ranks, 3 groups of 1"
same two_ref two_np3_d1
run_job two_np3_auto two 3 auto
expect_layout two_np3_auto "3 ranks, 1 group of 3"

run_job five_ref five 0 1
run_job five_np2 five 2 1
expect_layout five_np2 "2 ranks, 2 groups of 1"
same five_ref five_np2

run_job three_ref three 0 1
run_job three_np4 three 4 1
expect_layout three_np4 "4 ranks, 4 groups of 1"
same three_ref three_np4
[ "$(wc -l < "$work/three_np4.losses")" = 3 ] || fail "three_np4: expected 3 blocks"

model tiny 2 14 48 128 6 3
tiny_set=(--set calibration.sequences=9 --set calibration.seq_len=48)
run_job tiny_ref tiny 0 1 "${tiny_set[@]}"
run_job tiny_np2 tiny 2 1 "${tiny_set[@]}"
same tiny_ref tiny_np2
ragged=(--set quantization.group_size=20)
run_job ragged_ref two 0 1 "${ragged[@]}"
run_job ragged_np2 two 2 1 "${ragged[@]}"
same ragged_ref ragged_np2
ckpt=$work/ragged_np2/checkpoint.h5
"$NUPES_BIN" inspect "$ckpt" > "$work/ragged.inspect" 2>&1 || { cat "$work/ragged.inspect" >&2; fail "inspect of the ragged checkpoint failed"; }
grep -q "group_size 20" "$work/ragged.inspect" || { cat "$work/ragged.inspect" >&2; fail "inspect does not show group_size 20"; }
"$NUPES_BIN" export --checkpoint "$ckpt" --format llama2c --out "$work/ragged.bin" > /dev/null 2>&1 ||
  fail "export of the ragged checkpoint failed"
"$NUPES_BIN" eval --model "$work/ragged.bin" --checkpoint "$ckpt" --tokenizer "$NUPES_DATA/tok512.bin" \
  --text "$NUPES_DATA/eval-generated.txt" --seq-len 32 --sequences 8 > "$work/ragged.eval" 2>&1 ||
  { cat "$work/ragged.eval" >&2; fail "eval of the ragged checkpoint failed"; }
grep -q "^mean KL(fp32 || quantized): 0.000000 ± 0.000000" "$work/ragged.eval" &&
  grep -q "^top-1 agreement: 100.00%" "$work/ragged.eval" ||
  { cat "$work/ragged.eval" >&2; fail "the exported model and the ragged checkpoint differ"; }
echo "PASS: more ranks than blocks, uneven block counts, oversubscription and ragged groups all complete"
