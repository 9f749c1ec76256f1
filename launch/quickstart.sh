#!/usr/bin/env bash
# From a fresh Debian machine to a model learning on CPU: installs the dependencies, builds, and
# trains the quickstart config (associative recall) under mpirun. Extra arguments go to
# `longtrain train`, e.g. --set train.steps=100.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/launch/install_deps.sh"
"$root/launch/build.sh"

mpi_args=(-np 1)
[ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)
cd "$root"
exec mpirun "${mpi_args[@]}" --bind-to none "$root/build/longtrain" train \
  --config "$root/configs/quickstart.yaml" "$@"
