#!/usr/bin/env bash
# Installs the Debian packages longtrain builds against. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev googletest
  libopenblas-dev
  libopenmpi-dev openmpi-bin
  clang libclang-rt-dev  # libFuzzer and sanitizers for tests/fuzz
  python3-numpy python3-torch  # the PyTorch reference of tests/python/check_hf_logits.py
  python3-matplotlib           # launch/plot_metrics.py
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
