#!/bin/bash
# One call on a lent GPU machine (docs/device/README.md): install the carried wheels, then run each step
# named in STEPS while DEADLINE (seconds from the start) allows; results under $OUT, and everything it prints in
# $OUT/batch.log (a call's reply keeps only the last 12,000 characters of its output).
T0=$(date +%s); shopt -s nullglob
exec > >(tee -a "$OUT/batch.log") 2>&1
[ -n "$NOINSTALL" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
if [ -f .ray/ray-site-cp312.txz ]; then
  mkdir -p /tmp/raysite && tar -xJf .ray/ray-site-cp312.txz -C /tmp/raysite && export PYTHONPATH=$PYTHONPATH:/tmp/raysite
fi
KS="python3 -m ksearch"
R=$PWD/.gpuruns; mkdir -p $R $OUT/sweeps
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
log() { echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

step_peaks() {
  python3 -c "from ksearch.harness.sol import measure_device_peaks as m; print(m(refresh=True))"
}
step_norms() {
  for t in rmsnorm softmax; do
    $KS run configs/gpu/$t.yaml --budget-evals 6 --budget-seconds 70 --log-dir $R/$t 2>&1 | tail -4
  done
}
step_fixup() {
  W=llama3_8b_qkv_decode_m16_n6144_k4096,llama3_8b_o_proj_ragged_m77_n4096_k4096,llama3_70b_tp8_qkv_m128_n1280_k8192
  S='"BLOCK_M":64,"BLOCK_N":128,"BLOCK_K":64,"REDUCE":"workspace","num_stages":3,"num_warps":4'
  python3 docs/device/sweep.py matmul float16 $W $OUT/sweeps/fixup16 "split_k:{$S,\"SPLIT_K\":4}" "split_k:{$S,\"SPLIT_K\":\"sms\"}" \
    'split_k_fixup:{"BLOCK_M":16}' 'split_k_fixup:{"BLOCK_M":16,"SPLIT_K":"sms"}' 'split_k_fixup:{"SPLIT_K":"sms"}' \
    'split_k_fixup:{"BLOCK_M":16,"SPLIT_K":"sms","num_warps":4}' 'split_k_fixup:{"BLOCK_K":128,"SPLIT_K":"sms"}' 2>&1 | grep -v "^("
}
step_tma() {
  W=square_m4096_n4096_k4096
  B='"BLOCK_M":128,"BLOCK_N":256,"BLOCK_K":64,"num_warps":8,"WARP_SPECIALIZE":true,"FLATTEN":true'
  python3 docs/device/sweep.py matmul float16 $W $OUT/sweeps/tma16 "persistent_tma:{$B,\"num_stages\":3,\"GROUP_M\":8}" \
    "persistent_tma:{$B,\"num_stages\":4,\"GROUP_M\":8}" "persistent_tma:{$B,\"num_stages\":3,\"GROUP_M\":16}" \
    "persistent_tma:{$B,\"num_stages\":4,\"GROUP_M\":16}" "persistent_tma:{$B,\"num_stages\":3,\"GROUP_M\":4}" \
    "persistent_tma:{$B,\"num_stages\":3,\"GROUP_M\":8,\"PROGRAMS_PER_SM\":2}" 2>&1 | grep -v "^("
  python3 docs/device/sweep.py matmul bfloat16 $W $OUT/sweeps/tma_bf16 "persistent_tma:{$B,\"num_stages\":3,\"GROUP_M\":8}" \
    "persistent_tma:{$B,\"num_stages\":4,\"GROUP_M\":8}" 2>&1 | grep -v "^("
}
step_pkg() {
  runs=(); for d in $R/rmsnorm/*/ $R/softmax/*/; do [ -f $d/best_packet.json ] && runs+=($d); done
  $KS export "${runs[@]}" --to /tmp/kslib_src --name kslib 2>&1 | tail -5
  python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/kslib /tmp/kslib_src 2>&1 | tail -3
  (cd /tmp && for op in rmsnorm softmax; do PYTHONPATH=/tmp/kslib python3 -c "import ksearch" 2>&1 | tail -1; \
     PYTHONPATH=/tmp/kslib python3 -m kslib.bench $op; done) 2>&1
}
step_overhead() {
  $KS bench harness --device cuda --parts overhead --out $OUT/harness_overhead.json 2>&1 | tail -30
}
step_tccheck() {
  python3 docs/device/tc_check.py 2>&1 | grep -v "^\s*$" | tail -40
}
step_ray() {
  python3 -c "import ray; print('ray', ray.__version__)" || return
  python3 -m ksearch.cluster.overhead --device cuda --candidates 8 --order alternate --gap 2 --runs 2>&1 | grep -v "^\s*$" | tail -20
}
steps_of() {
  python3 -c "import sys; from ksearch.log import iter_rows; print(sum((l.row or {}).get('kind') == 'step' for l, _ in iter_rows(sys.argv[1])))" "$1"
}
step_item2() {
  # PLAN lines: NAME EVALS CONFIG ARGS...; a run reuses every run before it (same machine, kept in .gpuruns);
  # a run cut short by the time left is resumed by the next call for the evaluations it still owes
  while read -r name n cfg args; do
    [ -z "$name" ] && continue
    [ $(left) -lt 60 ] && { log "skip $name: $(left)s left"; continue; }
    reuse=""; for d in $R/item2/*/*/; do [[ "$d" != $R/item2/$name/* ]] && reuse="$reuse --reuse $d"; done
    runs=($R/item2/$name/*/); run=${runs[0]:-}
    if [ -n "$run" ]; then
      done_n=$(steps_of $run); [ "$done_n" -ge "$n" ] && { log "$name: $done_n done"; continue; }
      log "resume $name at $done_n of $n"
      $KS run --resume $run --budget-evals $(( n - done_n )) --budget-seconds $(( $(left) - 25 )) 2>&1 | tail -2
    else
      log "run $name"
      $KS run $cfg $args --budget-evals $n --budget-seconds $(( $(left) - 25 )) --log-dir $R/item2/$name $reuse 2>&1 | tail -2
    fi
    runs=($R/item2/$name/*/); run=${runs[0]:-}; log "$name: $(steps_of $run) evaluations"
  done <<< "$PLAN"
}
for s in $STEPS; do
  [ $(left) -lt 40 ] && { log "skip $s: $(left)s left"; continue; }
  log "step $s"; step_$s
done
log "export"
# one file each: a reply brings back a limited number of files
(cd $R && tar -czf $OUT/runs.tgz .) && (cd $OUT && tar -czf sweeps.tgz sweeps && rm -rf sweeps) && ls -la $OUT
