#!/usr/bin/env bash
# Checkpoints end to end on 4 ranks (ctest entry checkpoint_resume_np4):
#   1. same layout: 20 steps straight vs SIGTERM at step 10 then --resume auto: every loss and
#      the final checkpoint's files bit-identical, in fp32 and in bf16;
#   2. another layout: the tp 2 x cp 2 checkpoint of step 10 resumed under dp 4 with ZeRO-3,
#      tp 4, and dp 2 x tp 2 with ZeRO-1, and a dp 4 ZeRO-3 checkpoint resumed under
#      tp 2 x cp 2: losses within 1e-5 relative of the uninterrupted run;
#   3. faults: SIGKILL on a random rank after a random step, and during a save; rerunning the
#      same command resumes from the newest complete checkpoint and ends bit-identical;
#   4. a corrupted newest checkpoint (a flipped byte) is skipped with the reason, and the run
#      resumes from the one before and ends bit-identical;
#   5. `longtrain export` of the final checkpoint, then model.init_from under tp 2 x cp 2 and
#      dp 4 with ZeRO-3: the same losses (1e-5), starting from the trained model's.
# usage: check_checkpoints.sh LONGTRAIN WORKDIR MPIRUN [MPIRUN ARGS...]   (e.g. mpirun -np 4 ...)
set -euo pipefail
longtrain=$1
work=$2
shift 2
mpirun=("$@")
rm -rf "$work"
mkdir -p "$work"
cd "$work"
seed=${LT_TEST_SEED:-$RANDOM}
echo "random seed $seed (LT_TEST_SEED=$seed reproduces it)"
RANDOM=$seed

cat > config.yaml <<'EOF'
model: {dim: 64, layers: 2, heads: 4, kv_heads: 2, ffn: 160, vocab: 195}
data: {source: synthetic, task: associative_recall, seq_len: 64, num_pairs: 4, num_queries: 8}
train: {steps: 20, global_batch: 8, micro_batch: 2, eval_every: 0, threads: 1}
optim: {lr: 3.0e-3, warmup: 2}
logging: {every: 5}
checkpoint: {every: 5, keep: 10}
EOF

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# train NAME PRECISION LAYOUT... : a run logging to NAME/, checkpointing to NAME.ck/
train() {
  local name=$1 precision=$2
  shift 2
  local forward=()
  [ -z "${LT_INJECT_SIGNAL:-}" ] || forward=(-x LT_INJECT_SIGNAL)
  "${mpirun[@]}" "${forward[@]}" "$longtrain" train --config config.yaml --set precision="$precision" \
    --set logging.dir="$name" --set checkpoint.dir="$name.ck" "$@" > "$name.out" 2>&1
}

# compare_losses A B TOLERANCE: every train step of B has A's loss (0: exactly), using the last
# line of each step (a rerun repeats the steps after its checkpoint).
compare_losses() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" <<'EOF'
import json, sys
def losses(path):
    out = {}
    for line in open(path):
        record = json.loads(line)
        if record.get("split") == "train":
            out[record["step"]] = record["loss"]
    return out
a, b, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in b)
missing = sorted(k for k in a if k >= min(b) and k not in b)
print(f"  {sys.argv[2]}: steps {min(b)}-{max(b)}, max relative loss difference {worst:.3g}")
if missing:
    sys.exit(f"steps {missing} missing from {sys.argv[2]}")
if worst > tol or (tol == 0 and worst != 0):
    sys.exit(f"losses differ beyond {tol}")
EOF
}

same_files() {
  for f in "$1"/rank_*.safetensors; do
    cmp -s "$f" "$2/$(basename "$f")" || fail "$f and $2/$(basename "$f") differ"
  done
  echo "  $2: final parameters and optimizer state bit-identical"
}

layout_tp2cp2=(--set parallel.tp=2 --set parallel.cp=2)

echo "1. same layout: stop at step 10 (SIGTERM), resume, 10 more"
for precision in fp32 bf16; do
  train "straight_$precision" "$precision" "${layout_tp2cp2[@]}"
  LT_INJECT_SIGNAL="rank=$((RANDOM % 4)),step=10,signal=TERM" \
    train "split_$precision" "$precision" "${layout_tp2cp2[@]}" ||
    fail "the SIGTERM run did not exit 0"
  grep -q "received SIGTERM" "split_$precision.out" || fail "no SIGTERM message"
  [ -d "split_$precision.ck/step_00000010" ] || fail "no checkpoint at the SIGTERM step"
  [ ! -d "split_$precision.ck/step_00000015" ] || fail "the SIGTERM run went on"
  train "split_$precision" "$precision" "${layout_tp2cp2[@]}" --set checkpoint.resume=auto
  grep -q "resumed from split_$precision.ck/step_00000010" "split_$precision.out" ||
    fail "did not resume from step 10"
  compare_losses "straight_$precision" "split_$precision" 0
  same_files "straight_$precision.ck/step_00000020" "split_$precision.ck/step_00000020"
done

echo "2. another layout"
reshard() {  # reshard NAME SOURCE_CHECKPOINT LAYOUT...
  local name=$1 source=$2
  shift 2
  mkdir -p "$name.ck"
  cp -r "$source" "$name.ck/"
  train "$name" fp32 "$@" --set checkpoint.resume=auto
  grep -q "resumed from $name.ck/step_00000010" "$name.out" || fail "$name did not resume"
  compare_losses straight_fp32 "$name" 1e-5
}
reshard to_dp4_zero3 split_fp32.ck/step_00000010 --set parallel.dp=4 --set parallel.zero_stage=3
reshard to_tp4 split_fp32.ck/step_00000010 --set parallel.tp=4
reshard to_dp2_tp2_zero1 split_fp32.ck/step_00000010 --set parallel.dp=2 --set parallel.tp=2 \
  --set parallel.zero_stage=1
LT_INJECT_SIGNAL="rank=0,step=10,signal=USR1" \
  train zero3_source fp32 --set parallel.dp=4 --set parallel.zero_stage=3
reshard zero3_to_tp2cp2 zero3_source.ck/step_00000010 "${layout_tp2cp2[@]}"

echo "3. faults: SIGKILL after a random step and during a save"
rerun_until_done() {  # rerun_until_done NAME: the same command until it succeeds (at most 3 times)
  for attempt in 1 2 3; do
    if train "$1" fp32 "${layout_tp2cp2[@]}" --set checkpoint.resume=auto; then return 0; fi
  done
  fail "$1 did not finish in 3 reruns"
}
kill_step=$((1 + RANDOM % 19))
kill_rank=$((RANDOM % 4))
save_step=$((5 * (1 + RANDOM % 3)))
for fault in "rank=$kill_rank,step=$kill_step" "rank=$(((kill_rank + 1) % 4)),step=$save_step,phase=save"; do
  name=fault_$(echo "$fault" | tr ',=' '__')
  echo "  $fault"
  if LT_INJECT_SIGNAL="$fault" train "$name" fp32 "${layout_tp2cp2[@]}" \
    --set checkpoint.resume=auto; then
    fail "$name: the killed job exited 0"
  fi
  grep -q "LT_INJECT_SIGNAL: SIGKILL" "$name.out" || fail "$name: the kill did not happen"
  rerun_until_done "$name"
  compare_losses straight_fp32 "$name" 0
  same_files straight_fp32.ck/step_00000020 "$name.ck/step_00000020"
done

echo "4. a corrupted newest checkpoint is skipped"
mkdir -p corrupt.ck
cp -r split_fp32.ck/step_00000010 split_fp32.ck/step_00000015 corrupt.ck/
python3 - corrupt.ck/step_00000015/rank_00001.safetensors <<'EOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[-100] ^= 0x40
open(path, "wb").write(data)
EOF
train corrupt fp32 "${layout_tp2cp2[@]}" --set checkpoint.resume=auto
grep "skipping checkpoint" corrupt.out || fail "the corrupt checkpoint was not reported"
grep -q "rank_00001.safetensors" corrupt.out || fail "the report does not name the file"
grep -q "resumed from corrupt.ck/step_00000010" corrupt.out || fail "did not fall back to step 10"
compare_losses straight_fp32 corrupt 0
same_files straight_fp32.ck/step_00000020 corrupt.ck/step_00000020
echo "5. export to HuggingFace, then model.init_from under two layouts"
"$longtrain" export --checkpoint split_fp32.ck --out hf > export.out 2>&1 || fail "export failed"
init=(--set model.init_from=hf --set train.steps=5)
train init_tp2cp2 fp32 "${layout_tp2cp2[@]}" "${init[@]}"
train init_dp4_zero3 fp32 --set parallel.dp=4 --set parallel.zero_stage=3 "${init[@]}"
compare_losses init_tp2cp2 init_dp4_zero3 1e-5
python3 - straight_fp32/metrics.jsonl init_tp2cp2/metrics.jsonl <<'EOF2'
import json, sys
first = [next(json.loads(l)["loss"] for l in open(p) if '"train"' in l) for p in sys.argv[1:]]
print(f"  step-1 loss: fresh {first[0]:.4f}, from the export {first[1]:.4f}")
if not first[1] < first[0] - 0.1:
    sys.exit("the run from the export did not start from the trained weights")
EOF2
echo "all checkpoint checks passed"
