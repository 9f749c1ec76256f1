#!/usr/bin/env bash
# The cluster launcher: runs build/longtrain on every host of a hostfile with N ranks per node.
#
#   launch/mpirun.sh --hostfile FILE --ranks-per-node N [--bind core|socket|none] [--dry-run]
#                    [--env VAR ...] [--build DIR] -- <longtrain args>
#
# e.g. launch/mpirun.sh --hostfile hosts --ranks-per-node 8 -- train --config configs/x.yaml \
#        --set parallel.dp=16
#
# It runs (Open MPI syntax)
#   mpirun --hostfile FILE -np HOSTS*N --map-by ppr:N:node --bind-to BIND [--allow-run-as-root]
#          -x VAR ... BUILD/longtrain <longtrain args>
#
# Hosts: every line of the hostfile that is not blank and does not start with '#' (after leading
# blanks) names one host: its first word; the rest of the line (slots=K, max_slots=K) is not
# used to size the job. A host listed twice counts twice. The rank count is always
# hosts x --ranks-per-node, and --map-by ppr:N:node places exactly N on each node; slots=K is
# left to mpirun, which refuses to place N > K ranks on a host unless the job oversubscribes
# (pass --oversubscribe through MPIRUN_EXTRA_ARGS to allow it).
#
# Binding: --bind core (the default) pins each rank to one core (longtrain then uses the cores
# it is pinned to), socket to a socket, none leaves placement to the OS (one rank's threads may
# use every core of the node: set train.threads or OMP_NUM_THREADS).
#
# Environment: exported to every rank with -x when set here: OMP_NUM_THREADS, OPENBLAS_*,
# NCCL_*, UCX_*, OMPI_MCA_*, LT_*, and each --env VAR (repeatable; --env VAR=VALUE sets it
# first). Unset names given with --env are an error.
#
# Options: --build DIR (default $LT_BUILD_DIR or build/ beside this script's repository);
# MPIRUN (default mpirun) names the launcher; MPIRUN_EXTRA_ARGS (words) go to mpirun before the
# program. --dry-run prints the command (shell-quoted) and exits 0 without running it.
# Exit status: 2 for usage errors (missing or unreadable hostfile, no hosts, bad N, unknown
# option, missing '--'), else mpirun's.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog="$(basename "$0")"

usage() {
  cat <<EOF
usage: $prog --hostfile FILE --ranks-per-node N [--bind core|socket|none] [--dry-run]
       [--env VAR[=VALUE] ...] [--build DIR] -- <longtrain args>
EOF
}
die() {
  echo "$prog: error: $*" >&2
  usage >&2
  exit 2
}

hostfile=""
ranks_per_node=""
bind="core"
dry_run=0
build="${LT_BUILD_DIR:-$root/build}"
env_names=()
have_sep=0

while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) [ $# -ge 2 ] || die "--hostfile needs a file"; hostfile="$2"; shift 2 ;;
    --hostfile=*) hostfile="${1#*=}"; shift ;;
    --ranks-per-node) [ $# -ge 2 ] || die "--ranks-per-node needs a number"; ranks_per_node="$2"; shift 2 ;;
    --ranks-per-node=*) ranks_per_node="${1#*=}"; shift ;;
    --bind) [ $# -ge 2 ] || die "--bind needs core, socket or none"; bind="$2"; shift 2 ;;
    --bind=*) bind="${1#*=}"; shift ;;
    --env) [ $# -ge 2 ] || die "--env needs a variable name"; env_names+=("$2"); shift 2 ;;
    --env=*) env_names+=("${1#*=}"); shift ;;
    --build) [ $# -ge 2 ] || die "--build needs a directory"; build="$2"; shift 2 ;;
    --build=*) build="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,33p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) have_sep=1; shift; break ;;
    *) die "unknown option '$1' (longtrain arguments go after '--')" ;;
  esac
done

[ "$have_sep" -eq 1 ] || die "missing '--' before the longtrain arguments"
[ $# -gt 0 ] || die "no longtrain arguments after '--' (e.g. -- train --config FILE)"
[ -n "$hostfile" ] || die "--hostfile is required"
[ -e "$hostfile" ] || die "hostfile '$hostfile' does not exist"
{ [ -f "$hostfile" ] && [ -r "$hostfile" ]; } || die "hostfile '$hostfile' is not a readable file"
[ -n "$ranks_per_node" ] || die "--ranks-per-node is required"
[[ "$ranks_per_node" =~ ^[1-9][0-9]*$ ]] ||
  die "--ranks-per-node must be a positive integer, got '$ranks_per_node'"
case "$bind" in
  core|socket|none) ;;
  *) die "--bind must be core, socket or none, got '$bind'" ;;
esac

# One host per non-comment, non-blank line.
hosts="$(awk '{ sub(/^[ \t]+/, "") } $0 == "" || /^#/ { next } { n++ } END { print n + 0 }' \
  "$hostfile")"
[ "$hosts" -gt 0 ] || die "hostfile '$hostfile' lists no hosts"
np=$((hosts * ranks_per_node))

exports=()
for name in "${env_names[@]+"${env_names[@]}"}"; do
  if [[ "$name" == *=* ]]; then
    value="${name#*=}"
    name="${name%%=*}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env: bad variable name '$name'"
    export "$name=$value"
  else
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env: bad variable name '$name'"
    [ -n "${!name+set}" ] || die "--env $name: the variable is not set"
  fi
  exports+=("$name")
done
# Passed through when set here.
while IFS= read -r name; do
  case "$name" in
    OMP_NUM_THREADS|OPENBLAS_*|NCCL_*|UCX_*|OMPI_MCA_*|LT_*) exports+=("$name") ;;
  esac
done < <(compgen -e | sort)

cmd=("${MPIRUN:-mpirun}" --hostfile "$hostfile" -np "$np" --map-by "ppr:$ranks_per_node:node"
     --bind-to "$bind")
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
declare -A seen=()
for name in "${exports[@]+"${exports[@]}"}"; do
  [ -n "${seen[$name]+x}" ] && continue
  seen[$name]=1
  cmd+=(-x "$name")
done
if [ -n "${MPIRUN_EXTRA_ARGS:-}" ]; then
  read -r -a extra <<< "$MPIRUN_EXTRA_ARGS"
  cmd+=("${extra[@]}")
fi
cmd+=("$build/longtrain" "$@")

if [ "$dry_run" -eq 1 ]; then
  echo "# $hosts host(s) x $ranks_per_node rank(s) per node = $np rank(s)"
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
[ -x "$build/longtrain" ] || {
  echo "$prog: error: $build/longtrain not found: build first (launch/build.sh)" >&2
  exit 2
}
exec "${cmd[@]}"
