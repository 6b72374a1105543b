#!/usr/bin/env bash
# The quality table of the bundled stories260K model (issue "NUPES numerics"): fp32, RTN,
# PowerQuant and NUPES in parallel, sequential and pipelined mode at W4, W3 and W2, per
# channel, plus NUPES sequential with groups of 64 and of 32 inputs per scale (rows
# nupes-sequential-g64, nupes-sequential-g32; the learned scale is on, as everywhere), every
# other setting from configs/stories260K.toml (500 iterations, batch 4,
# lr 1e-3 / 1e-4 / 1e-3, learn_scale true, pipelined switch 0.8), on 2 MPI ranks.
# Prints a markdown table with, per row:
#   perplexity, mean KL(fp32 || quantized) and top-1 agreement on data/eval-generated.txt
#     (every window of 256 tokens), from 'nupes-mpi eval';
#   code entropy: Shannon entropy of each matrix's int8 codes, weighted by its size (the
#     bound for a coder that sees one tensor's statistics), in bits per weight;
#   stored bpw: storage size (H5Dget_storage_size, zstd-compressed) of every codes, scale
#     and exponent dataset under /blocks, divided by the number of quantized weights;
#   exponent: mean [min, max] of every /blocks/*/*/exponent value;
#   shift vs PQ: mean and largest |a - a_PQ| against the PowerQuant checkpoint of the same
#     bit width (NUPES starts from the PowerQuant exponents);
#   wall s: the quantization job's wall time (mpirun start to exit; the machine may be
#     shared, so this is noisy).
#
# Usage: bash scripts/quality_table.sh [build-dir]          (default: build/)
# Environment:
#   BITS="4 3 2"   bit widths;  NP=2  ranks;  OUT=run/quality  where checkpoints and logs go
#   ROWS="rtn powerquant nupes-parallel nupes-sequential nupes-pipelined nupes-sequential-g64
#         nupes-sequential-g32"  rows to run; a row nupes-MODE-gN runs MODE with group_size N
#   SET="key=value ..."  extra --set options for every NUPES row (hyperparameter trials)
#   REUSE=1        keep a row's existing checkpoint (and its recorded wall time) if present
#   CONFIG=configs/stories260K.toml  the job config (e.g. a frozen copy while it is edited)
# The PowerQuant row is needed for the exponent shift; without it the column shows "-".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin="$build/nupes-mpi"
[ -x "$bin" ] || { echo "quality_table: $bin missing (bash scripts/build.sh)" >&2; exit 2; }
bits_list=${BITS:-"4 3 2"}
np=${NP:-2}
out=${OUT:-$root/run/quality}
rows=${ROWS:-"rtn powerquant nupes-parallel nupes-sequential nupes-pipelined nupes-sequential-g64 nupes-sequential-g32"}
config=$(cd "$(dirname "${CONFIG:-$root/configs/stories260K.toml}")" && pwd)/$(basename "${CONFIG:-stories260K.toml}")
read -r -a extra <<< "${SET:-}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none HDF5_PLUGIN_PATH="$build/plugins"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC_BIN=${MPIEXEC:-mpirun}
eval_args=(--model "$root/data/stories260K.bin" --tokenizer "$root/data/tok512.bin"
           --text "$root/data/eval-generated.txt" --seq-len 256)

# stats CHECKPOINT [POWERQUANT_CHECKPOINT]: "entropy|stored_bpw|exponent|shift".
stats() {
  /usr/bin/python3 - "$@" <<'EOF'
import sys
import h5py
import numpy as np

def matrices(path):
    with h5py.File(path, "r") as f:
        for b in sorted(f["blocks"]):
            for w in sorted(f["blocks"][b]):
                g = f["blocks"][b][w]
                if isinstance(g, h5py.Group) and "codes" in g:
                    yield (b + "/" + w, g["codes"][...], g["exponent"][...],
                           sum(g[d].id.get_storage_size() for d in ("codes", "scale", "exponent")))

n = 0; bits = 0.0; stored = 0; exps = {}
for name, codes, exponent, size in matrices(sys.argv[1]):
    counts = np.bincount(codes.astype(np.int64).ravel() + 128, minlength=256)
    p = counts[counts > 0] / codes.size
    bits += codes.size * float(-(p * np.log2(p)).sum())
    n += codes.size; stored += size; exps[name] = exponent.astype(np.float64)
allv = np.concatenate(list(exps.values()))
shift = "-"
if len(sys.argv) > 2:
    ref = {name: e.astype(np.float64) for name, _, e, _ in matrices(sys.argv[2])}
    d = np.concatenate([np.abs(exps[k] - ref[k]) for k in exps])
    shift = "%.4f / %.4f" % (d.mean(), d.max())
print("%.3f|%.3f|%.3f [%.3f, %.3f]|%s" % (bits / n, 8.0 * stored / n, allv.mean(), allv.min(),
                                           allv.max(), shift))
EOF
}

field() { awk -v key="$2" -v col="$3" 'index($0, key) == 1 { print $col }' "$1"; }

# run_row NAME BITS: quantizes (unless REUSE finds it), evaluates, prints the table row.
run_row() {
  local name=$1 bits=$2 dir="$out/$1-w$2" method mode kv set=()
  case $name in
    rtn|powerquant) method=$name mode=parallel ;;
    nupes-*-g[0-9]*) method=nupes mode=${name#nupes-} mode=${mode%-g*}
             set+=(--set "quantization.group_size=${name##*-g}")
             for kv in ${extra[@]+"${extra[@]}"}; do set+=(--set "$kv"); done ;;
    nupes-*) method=nupes mode=${name#nupes-}
             for kv in ${extra[@]+"${extra[@]}"}; do set+=(--set "$kv"); done ;;
    *) echo "quality_table: unknown row '$name'" >&2; exit 2 ;;
  esac
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$dir/checkpoint.h5" ] || [ ! -s "$dir.time" ]; then
    local t0 t1
    t0=$(date +%s.%N)
    "$MPIEXEC_BIN" -np "$np" "$bin" --config "$config" --restart \
      --set run.dir="$dir" --set quantization.method="$method" --set quantization.bits="$bits" \
      --set reconstruction.mode="$mode" ${set[@]+"${set[@]}"} < /dev/null > "$dir.log" 2>&1 ||
      { echo "quality_table: $name W$bits failed, see $dir.log" >&2; tail -5 "$dir.log" >&2; exit 3; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' > "$dir.time"
    "$bin" eval "${eval_args[@]}" --checkpoint "$dir/checkpoint.h5" > "$dir.eval" 2>&1 ||
      { cat "$dir.eval" >&2; exit 3; }
  fi
  local pq="$out/powerquant-w$bits/checkpoint.h5" ref=()
  [ "$name" != powerquant ] && [ -s "$pq" ] && ref=("$pq")
  local s
  s=$(stats "$dir/checkpoint.h5" "${ref[@]}")
  printf '| %s | W%s | %s | %s | %s | %s |\n' "$name" "$bits" "$(field "$dir.eval" "quantized perplexity" 3)" \
    "$(field "$dir.eval" "mean KL" 5)" "$(field "$dir.eval" "top-1 agreement" 3)" \
    "${s//|/ | } | $(cat "$dir.time")"
}

"$bin" eval "${eval_args[@]}" > "$out/fp32.eval" 2>&1 || { cat "$out/fp32.eval" >&2; exit 3; }
echo "stories260K, data/eval-generated.txt (every 256-token window); $np ranks; per channel unless -gN;" \
     "$config defaults (zstd level $(awk -F'[ =#]+' '/^zstd_level/ { print $2 }' "$config"))${SET:+ with $SET};" \
     "load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| method | bits | perplexity | mean KL (nats/token) | top-1 | code entropy (bits/w) | stored bpw | exponent mean [min, max] | shift vs PQ mean / max | wall s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "| fp32 | - | $(field "$out/fp32.eval" "fp32 perplexity" 3) | 0 | 100% | - | 32 | - | - | - |"
for bits in $bits_list; do
  for name in $rows; do run_row "$name" "$bits"; done
done
