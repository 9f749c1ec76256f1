#!/usr/bin/env bash
# Configures and builds longtrain into build/ (or $LT_BUILD_DIR). Release by default.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LT_BUILD_DIR:-$root/build}"
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${LT_BUILD_TYPE:-Release}" > "$build.cmake.log" 2>&1 \
  || { cat "$build.cmake.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs"
