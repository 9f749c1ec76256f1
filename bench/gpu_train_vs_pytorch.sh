#!/usr/bin/env bash
# End-to-end training on one GPU, longtrain against PyTorch eager in the same run: trains the
# TinyLlama-1.1B shapes (dim 2048, 22 layers, 32 heads / 4 KV heads, FFN 5632, vocab 32000) at
# seq 8192, batch 1, bf16, AdamW with build/bench/bench_cuda_train, which also writes the token
# batches it trains on; then bench/pytorch_reference.py trains the same model on those batches
# (bf16 autocast, SDPA attention, fused AdamW) and the script prints both tokens/s and MFU and
# their ratio. Both do the same FLOPs per token, so PyTorch's MFU is longtrain's scaled by the
# tokens/s ratio. Builds nothing (launch/build.sh does). Without a GPU it says so and exits 0;
# without torch or its CUDA it prints longtrain's figures alone (exit 0); when the PyTorch run
# itself fails (e.g. out of memory) it prints them too and exits 1. Peak memory: longtrain's
# tracked allocations, PyTorch's torch.cuda.max_memory_allocated.
#
#   bench/gpu_train_vs_pytorch.sh [--seq 8192] [--layers 22] [--steps 10] [--warmup 3]
#                                 [--batch 1] [--precision bf16|fp32] [--recompute none|...]
#                                 [--text FILE] [--peak-tflops P]
#
# --layers, --warmup and --precision go to both sides; the others go to bench_cuda_train, and
# PyTorch takes the steps, batch and seq_len from the batch file. --recompute is longtrain's
# alone (PyTorch keeps every activation). LT_BUILD_DIR picks the build (default build/),
# LT_PYTHON the interpreter with torch (default python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LT_BUILD_DIR:-$root/build}"
bench="$build/bench/bench_cuda_train"
python="${LT_PYTHON:-python3}"
me="gpu_train_vs_pytorch"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

layers=22 warmup=3 precision=bf16
lt_args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --layers | --warmup | --precision | --seq | --steps | --batch | --recompute | --text | --peak-tflops)
      (($# >= 2)) || { echo "$me: missing value for $1" >&2; exit 1; }
      case "$1" in
        --layers) layers="$2" ;;
        --warmup) warmup="$2" ;;
        --precision) precision="$2" ;;
        *) lt_args+=("$1" "$2") ;;
      esac
      shift 2 ;;
    *) echo "$me: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
done

[[ -x "$bench" ]] || { echo "$me: $bench not built (CUDA build: launch/build.sh)" >&2; exit 2; }

tmp="$(mktemp -d /tmp/lt_gpu_train.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
batches="$tmp/batches.bin"

echo "== longtrain ($bench)"
"$bench" --layers "$layers" --warmup "$warmup" --precision "$precision" ${lt_args[@]+"${lt_args[@]}"} \
  --dump-batches "$batches" | tee "$tmp/lt.txt"
if grep -q '^no CUDA device' "$tmp/lt.txt"; then
  echo "$me: no CUDA device; nothing measured, PyTorch side skipped"
  exit 0
fi
figure() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
lt_tps="$(figure longtrain_tokens_per_s_median "$tmp/lt.txt")"
lt_mfu="$(figure longtrain_mfu_median "$tmp/lt.txt")"
lt_mem="$(figure longtrain_peak_memory_bytes "$tmp/lt.txt")"

# longtrain's figures alone, after message $1; exits with status $2.
longtrain_alone() {
  echo "$me: $1; longtrain's figures alone"
  awk -v t="$lt_tps" -v m="$lt_mfu" -v b="$lt_mem" 'BEGIN {
    mfu = m > 0 ? sprintf("%.1f%%", 100 * m) : "n/a"
    printf "\nlongtrain %.0f tok/s, MFU %s, peak %.2f GiB (tracked)\n", t, mfu, b / 2^30 }'
  exit "$2"
}
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
  longtrain_alone "PyTorch with CUDA is unavailable for $python (set LT_PYTHON)" 0

echo "== PyTorch eager ($python bench/pytorch_reference.py)"
"$python" "$root/bench/pytorch_reference.py" --batches "$batches" --device cuda \
  --precision "$precision" --attention sdpa --fused-adamw --dim 2048 --layers "$layers" \
  --heads 32 --kv-heads 4 --ffn 5632 --warmup "$warmup" | tee "$tmp/pt.txt" ||
  longtrain_alone "the PyTorch reference failed (exit ${PIPESTATUS[0]}; see above)" 1
pt_tps="$(figure pytorch_tokens_per_s_median "$tmp/pt.txt")"
pt_mem="$(figure pytorch_peak_memory_bytes "$tmp/pt.txt")"

awk -v a="$lt_tps" -v m="$lt_mfu" -v b="$pt_tps" -v am="$lt_mem" -v bm="$pt_mem" '
  function mfu(x) { return m > 0 ? sprintf("%.1f%%", 100 * x) : "n/a" }
  BEGIN {
    printf "\n%-10s %12s %8s %16s\n", "", "tokens/s", "MFU", "peak memory"
    printf "%-10s %12.0f %8s %12.2f GiB\n", "longtrain", a, mfu(m), am / 2^30
    printf "%-10s %12.0f %8s %12.2f GiB\n", "PyTorch", b, mfu(m * b / a), bm / 2^30
    printf "longtrain / PyTorch = %.2fx tokens/s\n", a / b
  }'
