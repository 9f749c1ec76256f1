#!/usr/bin/env bash
# Context-parallel scaling at a fixed sequence length (bench/bench_context_parallel.cpp): runs the
# bench under mpirun for cp = 1, 2, 4 (one rank per cp rank, parallel.cp = world size) and prints
# one table, then the per-rank causal attention work for zigzag vs contiguous sharding once.
# Usage: bench/context_parallel.sh [seq_len] [np list]     e.g. bench/context_parallel.sh 4096 "1 2 4"
# More bench options through CP_BENCH_ARGS (e.g. "--steps 5 --threads 2").
# Ranks may outnumber cores (the default 4 ranks on a 2-core machine): mpirun then runs with
# --oversubscribe and --bind-to none, and step times include the time-sharing of the cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seq="${1:-4096}"
nps="${2:-1 2 4}"
build="${LT_BUILD_DIR:-$root/build}"
bench="$build/bench/bench_context_parallel"
if [ ! -x "$bench" ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" --target bench_context_parallel -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  else
    LT_BUILD_DIR="$build" "$root/launch/build.sh" >/dev/null
  fi
fi

read -r -a extra <<< "${CP_BENCH_ARGS:-}"
mpi_args=(--bind-to none)
[ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)
cores="$(nproc 2>/dev/null || echo 1)"

header=()
for np in $nps; do
  oversub=()
  [ "$np" -gt "$cores" ] && oversub=(--oversubscribe)
  mpirun "${mpi_args[@]}" "${oversub[@]+"${oversub[@]}"}" -np "$np" "$bench" --seq "$seq" \
    --no-balance "${header[@]+"${header[@]}"}" "${extra[@]+"${extra[@]}"}"
  header=(--no-header)
done
"$bench" --seq "$seq" --balance-only
echo
echo "host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
