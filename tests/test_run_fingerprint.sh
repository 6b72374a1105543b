#!/usr/bin/env bash
# The run fingerprint covers everything that changes the result (io/fingerprint.h); a
# resume that would change it is refused with exit 2 and one line naming what differs:
#  - a Hugging Face model whose config.json changed rms_norm_eps or rope_theta (same
#    tensors: the weights' hash alone does not see it);
#  - mpi.data_parallel = "auto" stopped on 2 ranks (D = 1) and resumed on 6 (D = 2): the
#    resolved D is stored, not "auto"; resumed on 3 ranks (D = 1 again) it is accepted;
#  - sequential mode (D = every rank) run on 2 ranks, resumed on 3.
# The jobs run 2 iterations per block: only the run directory's fingerprint matters here.
set -u
# shellcheck source=tests/resume_lib.sh
source "$(dirname "$0")/resume_lib.sh"
# shellcheck source=tests/runlock_lib.sh
source "$(dirname "$0")/runlock_lib.sh"
W=$RL_WORK

echo "== Hugging Face config.json scalars"
mkdir -p "$W/hf"
"$NUPES_TOOLS_DIR/make_hf_model" "$NUPES_DATA/stories260K.bin" "$W/hf" f32 >/dev/null || fail "make_hf_model"
cp "$W/hf/config.json" "$W/config.json.orig"
mapfile -t HF < <(rk_args "$W/hfrun" "model.path=$W/hf" reconstruction.iterations=2)
rk_run hf 1 "${HF[@]}"
rk_expect hf 0
for change in 's/"rms_norm_eps":[[:space:]]*[0-9.e-]*/"rms_norm_eps": 1e-06/' \
  's/"rope_theta":[[:space:]]*[0-9.e+]*/"rope_theta": 500000/'; do
  key=$(echo "$change" | sed 's/^s\/"\([a-z_]*\)".*/\1/')
  sed "$change" "$W/config.json.orig" >"$W/hf/config.json"
  cmp -s "$W/hf/config.json" "$W/config.json.orig" && fail "the edit of $key changed nothing in config.json"
  rk_run "hf-$key" 1 "${HF[@]}"
  rk_expect "hf-$key" 2 "model_config\.$key = .* in the run directory, .* now"
  rl_log "  $key changed: $(grep -m1 error "$W/hf-$key.err" | sed 's/.*settings: //')"
done
cp "$W/config.json.orig" "$W/hf/config.json"
rk_run hf-same 1 "${HF[@]}"
rk_expect hf-same 0

echo "== mpi.data_parallel = auto: the resolved D"
mapfile -t AUTO < <(rk_args "$W/auto" mpi.data_parallel=auto reconstruction.iterations=2)
rk_run auto2 2 "${AUTO[@]}"
rk_expect auto2 0
rk_run auto6 6 "${AUTO[@]}"
rk_expect auto6 2 "mpi.data_parallel = 1 in the run directory, 2 now"
rl_log "  2 ranks then 6: $(grep -m1 error "$W/auto6.err" | sed 's/.*settings: //')"
rk_run auto3 3 "${AUTO[@]}"
rk_expect auto3 0
rl_log "  2 ranks then 3 (D = 1 both times): accepted"

echo "== sequential mode on 2 ranks, then 3"
mapfile -t SEQ < <(rk_args "$W/seq" reconstruction.mode=sequential reconstruction.iterations=2)
rk_run seq2 2 "${SEQ[@]}"
rk_expect seq2 0
rk_run seq3 3 "${SEQ[@]}"
rk_expect seq3 2 "mpi.data_parallel = 2 in the run directory, 3 now.*sequential mode"
[ "$(grep -c error "$W/seq3.err")" = 1 ] || fail "seq3: not one error line: $(cat "$W/seq3.err")"
rl_log "  $(grep -m1 error "$W/seq3.err" | sed 's/.*settings: //')"
echo "PASS"
