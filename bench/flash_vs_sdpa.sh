#!/usr/bin/env bash
# Flash attention against PyTorch's scaled_dot_product_attention on the same GPU in one run:
# times the PyTorch shapes first (bench/sdpa_reference.py), then runs bench_cuda_attention with
# them as its reference, which prints both and the ratios. Without torch (or its CUDA) it runs the
# C++ benchmark alone. Extra arguments (--seqs, --head-dims, --iters, --warmup) go to both.
#
#   bench/flash_vs_sdpa.sh [--seqs 4096,8192,16384,32768] [--head-dims 128,64] [--iters 10]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LT_BUILD_DIR:-$root/build}"
bench="$build/bench/bench_cuda_attention"
[[ -x "$bench" ]] || { echo "flash_vs_sdpa: $bench not built (CUDA build: launch/build.sh)" >&2; exit 2; }
python="${LT_PYTHON:-python3}"
ref="$(mktemp)"
trap 'rm -f "$ref"' EXIT
if "$python" "$root/bench/sdpa_reference.py" --out "$ref" "$@"; then
  grep '^#' "$ref" || true
  exec "$bench" --reference "$ref" "$@"
fi
echo "flash_vs_sdpa: no PyTorch reference; flash attention alone" >&2
exec "$bench" "$@"
