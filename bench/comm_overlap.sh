#!/usr/bin/env bash
# How much communication each parallel layout hides under compute: trains the quickstart model (or
# CONFIG) for a few steps per layout with logging.comm_timing and prints rank 0's summary: the
# time it was blocked in communication (exposed) against the step time, how many non-blocking
# calls (ring K/V and gradient hops, ZeRO gathers and reduce-scatters) were complete before
# their wait (hidden), and one row per group and operation (calls, MiB, exposed ms, and the
# issue-to-wait window in which compute could hide a non-blocking call).
# Usage: bench/comm_overlap.sh [steps] [layout ...]
#   steps:   training steps per layout (default 20)
#   layouts: mpirun ranks and parallel settings (default: cp=2 dp=2 tp=2 dp=2,cp=2 zero=3,dp=2)
# Extra longtrain options through CO_BENCH_ARGS (e.g. "--set data.seq_len=1024"). On a GPU node
# add "--set train.device=cuda" (one rank per GPU). Ranks may outnumber cores: the exposed
# times then include the sharing of the cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-20}"
shift || true
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(cp=2 dp=2 tp=2 dp=2,cp=2 zero=3,dp=2)
config="${CONFIG:-$root/configs/quickstart.yaml}"
build="${LT_BUILD_DIR:-$root/build}"
[ -x "$build/longtrain" ] || LT_BUILD_DIR="$build" "$root/launch/build.sh" >/dev/null
read -r -a extra <<< "${CO_BENCH_ARGS:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for layout in "${layouts[@]}"; do
  sets=()
  ranks=1
  IFS=',' read -r -a parts <<< "$layout"
  for part in "${parts[@]}"; do
    key="${part%%=*}"; value="${part#*=}"
    case "$key" in
      dp|cp|tp) sets+=(--set "parallel.$key=$value"); ranks=$((ranks * value)) ;;
      zero) sets+=(--set "parallel.zero_stage=$value") ;;
      *) echo "error: layout part '$part': expected dp=N, cp=N, tp=N or zero=S" >&2; exit 2 ;;
    esac
  done
  mpi_args=(--bind-to none --oversubscribe -np "$ranks")
  [ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)
  log="$work/${layout//[=,]/_}.log"
  echo "== $layout ($ranks ranks), $steps steps, $(basename "$config")"
  mpirun "${mpi_args[@]}" "$build/longtrain" train --config "$config" "${sets[@]}" \
    --set train.steps="$steps" --set train.eval_every=0 --set logging.every=1000 \
    --set logging.comm_timing=true --set logging.dir="$work/${layout//[=,]/_}" \
    "${extra[@]+"${extra[@]}"}" > "$log" 2>&1 ||
    { echo "layout $layout failed:"; grep -m3 "error" "$log" || tail -5 "$log"; exit 1; }
  grep "summary: " "$log" | grep -v "peak memory\|last eval" | sed 's/^\[[0-9:]*\] summary: /  /'
done
