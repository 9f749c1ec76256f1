#!/usr/bin/env bash
# Memory and step time for every ZeRO stage x recompute policy on one multi-rank job: trains the
# quickstart model (or CONFIG) for a few steps per combination and prints, from rank 0's
# metrics.jsonl, the peak bytes per category (max over the steps) and the median step time of
# the steps after the first. Same config, same data, same ranks in every row, so the columns
# compare the two memory levers directly.
# Usage: bench/zero_recompute.sh [layout] [steps]
#   layout: mpirun ranks and parallel settings, default "dp=4" (also e.g. "dp=2,cp=2")
#   steps:  training steps per combination (default 12; the first is not timed)
# Extra longtrain options through ZR_BENCH_ARGS (default "--set train.micro_batch=4"; e.g.
# "--set train.micro_batch=4 --set data.seq_len=1024").
# Ranks may outnumber cores (4 ranks on a 2-core machine): step times then include the sharing
# of the cores; the ratios between rows are what to read.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layout="${1:-dp=4}"
steps="${2:-12}"
config="${CONFIG:-$root/configs/quickstart.yaml}"
build="${LT_BUILD_DIR:-$root/build}"
[ -x "$build/longtrain" ] || LT_BUILD_DIR="$build" "$root/launch/build.sh" >/dev/null
# The quickstart steps 16 sequences; 4 per micro-batch lets dp be 1, 2 or 4.
read -r -a extra <<< "${ZR_BENCH_ARGS:---set train.micro_batch=4}"

sets=()
ranks=1
IFS=',' read -r -a parts <<< "$layout"
for part in "${parts[@]}"; do
  key="${part%%=*}"; value="${part#*=}"
  case "$key" in
    dp|cp|tp) sets+=(--set "parallel.$key=$value"); ranks=$((ranks * value)) ;;
    *) echo "error: layout part '$part': expected dp=N, cp=N or tp=N" >&2; exit 2 ;;
  esac
done
mpi_args=(--bind-to none --oversubscribe -np "$ranks")
[ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "config $(basename "$config"), layout $layout ($ranks ranks), $steps steps per row; bytes per rank (rank 0)"
printf '%-6s %-10s %12s %12s %12s %14s %12s %14s %12s %10s\n' stage recompute weights grads \
  optimizer activations workspace communication total "step ms"
for stage in 0 1 2 3; do
  for policy in none selective full; do
    dir="$work/z${stage}_$policy"
    mpirun "${mpi_args[@]}" "$build/longtrain" train --config "$config" "${sets[@]}" \
      --set parallel.zero_stage="$stage" --set train.recompute="$policy" \
      --set train.steps="$steps" --set train.eval_every=0 --set logging.every=1000 \
      --set logging.dir="$dir" "${extra[@]+"${extra[@]}"}" > "$dir.log" 2>&1 ||
      { echo "stage $stage, recompute $policy failed:"; grep -m3 "error" "$dir.log" || tail -5 "$dir.log"; exit 1; }
    python3 - "$dir/metrics.jsonl" "$stage" "$policy" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"split": "train"' in l]
cats = ["weights", "grads", "optimizer", "activations", "workspace", "communication", "total"]
peak = {c: max(r["mem_peak_" + c] for r in rows) for c in cats}
times = [r["step_time_s"] * 1000 for r in rows[1:]] or [rows[0]["step_time_s"] * 1000]
print(f"{sys.argv[2]:<6} {sys.argv[3]:<10} {peak['weights']:12,} {peak['grads']:12,} "
      f"{peak['optimizer']:12,} {peak['activations']:14,} {peak['workspace']:12,} "
      f"{peak['communication']:14,} {peak['total']:12,} {statistics.median(times):10.1f}")
PY
  done
done
echo "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
