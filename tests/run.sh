#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test (ctest). Extra arguments go to ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/launch/install_deps.sh"
"$root/launch/build.sh"
cd "${LT_BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 900 "$@"
