#!/usr/bin/env bash
# Trains the benchmark model (dim 256, 4 layers, 8/4 heads, FFN 688, vocab 256, seq 512, batch 8,
# fp32, AdamW) with longtrain and with PyTorch eager (Debian's python3-torch) on the same token
# batches, one after the other, and prints both median tokens/s and their ratio.
# Usage: bench/train_vs_pytorch.sh [steps] [threads]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-12}"
threads="${2:-$(nproc)}"
build="${LT_BUILD_DIR:-$root/build}"
[ -x "$build/bench/bench_train_cpu" ] || "$root/launch/build.sh" >/dev/null
/usr/bin/python3 -c "import torch" 2>/dev/null || {
  echo "PyTorch for /usr/bin/python3 is missing: apt-get install python3-torch" >&2; exit 1; }

batches="$(mktemp /tmp/lt_batches.XXXXXX)"
trap 'rm -f "$batches"' EXIT
lt_out="$("$build/bench/bench_train_cpu" --steps "$steps" --threads "$threads" --dump-batches "$batches")"
echo "$lt_out"
pt_out="$(/usr/bin/python3 "$root/bench/pytorch_reference.py" --batches "$batches" --threads "$threads" \
  --dim 256 --layers 4 --heads 8 --kv-heads 4 --ffn 688 --warmup 2 --lr 3e-4)"
echo "$pt_out"
lt_tps="$(echo "$lt_out" | awk '/^longtrain_tokens_per_s_median/ {print $2}')"
pt_tps="$(echo "$pt_out" | awk '/^pytorch_tokens_per_s_median/ {print $2}')"
awk -v a="$lt_tps" -v b="$pt_tps" 'BEGIN {
  printf "\nlongtrain %.0f tok/s, PyTorch %.0f tok/s: longtrain / PyTorch = %.2fx\n", a, b, a / b }'
