#!/usr/bin/env bash
# The README's main command: installs and builds, then quantizes the bundled stories260K
# model with RTN, PowerQuant and NUPES at 4 and 3 bits (NUPES on 2 MPI ranks, in parallel
# and sequential mode) and prints their quality against fp32 on held-out text.
# NUPES_NP sets the number of ranks (default 2); NUPES_ITERATIONS the iterations per block.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh" >/dev/null
bin="$root/build/nupes-mpi"
np=${NUPES_NP:-2}
iterations=${NUPES_ITERATIONS:-500}
out="$root/run/example"
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HDF5_PLUGIN_PATH="$root/build/plugins"

eval_args=(--model "$root/data/stories260K.bin" --tokenizer "$root/data/tok512.bin"
           --text "$root/data/eval-generated.txt" --seq-len 256)
rows=()
run() { # name method bits mode
  local name=$1 method=$2 bits=$3 mode=$4 dir="$out/$1" start end
  start=$(date +%s.%N)
  mpirun -np "$np" "$bin" --config "$root/configs/stories260K.toml" --restart \
    --set run.dir="$dir" --set quantization.method="$method" --set quantization.bits="$bits" \
    --set reconstruction.mode="$mode" --set reconstruction.iterations="$iterations" \
    > "$dir.log" 2>&1 || { echo "example: $name failed, see $dir.log" >&2; tail -5 "$dir.log" >&2; exit 1; }
  end=$(date +%s.%N)
  "$bin" eval "${eval_args[@]}" --checkpoint "$dir/checkpoint.h5" > "$dir.eval" 2>&1
  local ppl kl top1 bpw
  ppl=$(awk '/^quantized perplexity/ {print $3}' "$dir.eval")
  kl=$(awk '/^mean KL/ {print $5}' "$dir.eval")
  top1=$(awk '/^top-1 agreement/ {print $3}' "$dir.eval")
  bpw=$("$bin" inspect "$dir/checkpoint.h5" | awk '/^  stored:/ {print $2}')
  rows+=("$(printf '%-22s %4s  %10s  %8s  %7s  %6s  %6.1f' "$name" "W$bits" "$ppl" "$kl" "$top1" "${bpw:--}" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")")
  echo "example: $name done ($(tail -1 "$dir.log"))"
}

"$bin" eval "${eval_args[@]}" > "$out/fp32.eval" 2>&1
fp32=$(awk '/^fp32 perplexity/ {print $3}' "$out/fp32.eval")
for bits in 4 3; do
  run "rtn-w$bits" rtn "$bits" parallel
  run "powerquant-w$bits" powerquant "$bits" parallel
  run "nupes-parallel-w$bits" nupes "$bits" parallel
  run "nupes-sequential-w$bits" nupes "$bits" sequential
done

echo
echo "stories260K on data/eval-generated.txt (198 windows of 256 tokens); $np ranks, $iterations iterations per block"
printf '%-22s %4s  %10s  %8s  %7s  %6s  %6s\n' method bits perplexity "KL(nats)" top-1 bpw "time s"
printf '%-22s %4s  %10s  %8s  %7s  %6s  %6s\n' fp32 "" "$fp32" 0 100% 32 -
printf '%s\n' "${rows[@]}"
echo
echo "checkpoints: $out/*/checkpoint.h5 (read them with h5dump/h5py: HDF5_PLUGIN_PATH=$root/build/plugins)"
