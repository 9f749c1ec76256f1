#!/usr/bin/env bash
# From a fresh Debian machine to a model learning on CPU: installs the dependencies, builds, and
# trains the quickstart config (associative recall) on 4 ranks under mpirun: tensor parallel 2 x
# context parallel 2 (the same losses as one process). Extra arguments go to `longtrain train`,
# e.g. --set train.steps=100. LT_QUICKSTART_RANKS=1 runs a single process instead. It ends with
# a sample from `longtrain generate` on the trained model's checkpoint.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/launch/install_deps.sh"
"$root/launch/build.sh"

ranks="${LT_QUICKSTART_RANKS:-4}"
layout=()
case "$ranks" in
  1) ;;
  4) layout=(--set parallel.tp=2 --set parallel.cp=2) ;;
  *) echo "error: LT_QUICKSTART_RANKS must be 1 or 4, got '$ranks'" >&2; exit 2 ;;
esac
# More ranks than cores is fine here: each rank runs one thread.
mpi_args=(-np "$ranks" --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)
cd "$root"
# Each quickstart is a fresh run: checkpoints of an earlier one would otherwise be the newest.
checkpoints="runs/quickstart/checkpoints"
rm -rf "$checkpoints"
mpirun "${mpi_args[@]}" "$root/build/longtrain" train \
  --config "$root/configs/quickstart.yaml" --set checkpoint.dir="$checkpoints" "${layout[@]}" "$@"

# The trained model answers the recall queries of a held-out sample (one process, greedy,
# KV-cached); the data says what each answer should be.
echo
echo "== longtrain generate: the trained model on eval sample 0 =="
"$root/build/longtrain" generate --checkpoint "$checkpoints" --task-sample 0 --temperature 0
