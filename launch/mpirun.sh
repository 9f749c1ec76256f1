#!/usr/bin/env bash
# The cluster launcher: runs longtrain under Open MPI's mpirun, one rank per GPU (or N per node).
#
#   launch/mpirun.sh [--hostfile FILE] [--gpus-per-node N | --ranks-per-node N] [--np N]
#                    [--bind-to core|numa|socket|none] [--map-by SPEC] [--env VAR[=VALUE] ...]
#                    [--build DIR] [--dry-run] -- <longtrain args>
#
# e.g. launch/mpirun.sh --hostfile hosts --gpus-per-node 8 -- train \
#        --config configs/llama3-70b-128k.yaml --resume auto
#      launch/mpirun.sh --np 4 --bind-to none -- train --config configs/quickstart.yaml \
#        --set parallel.tp=2 --set parallel.cp=2
#
# It runs (Open MPI syntax; the words in [] only when they apply)
#   mpirun [--hostfile FILE] -np NP [--map-by ppr:N:node] --bind-to BIND [--allow-run-as-root]
#          -x VAR ... [$MPIRUN_EXTRA_ARGS] BUILD/longtrain <longtrain args>
#
# Ranks: --gpus-per-node N starts one rank per GPU, N on each node: NP = hosts x N, placed with
# --map-by ppr:N:node (longtrain gives local rank r GPU r). --ranks-per-node N is the same for
# CPU runs. Without a hostfile the job runs on this node (hosts = 1). --np NP alone starts NP
# ranks where mpirun's slots allow; with a per-node count it must equal hosts x N.
# Hosts: every line of the hostfile that is not blank and does not start with '#' (after leading
# blanks) names one host by its first word; slots=K is left to mpirun (which refuses more than K
# ranks on a host unless MPIRUN_EXTRA_ARGS holds --oversubscribe). A host listed twice counts
# twice.
#
# Binding: --bind-to numa (the default with --gpus-per-node) keeps each rank and its threads on
# one NUMA domain; core (the default otherwise) pins each rank to one core (longtrain then runs
# one thread per rank), socket to a socket, none leaves placement to the OS (set train.threads
# or OMP_NUM_THREADS). --map-by SPEC replaces the computed mapping (e.g. ppr:4:numa:PE=12).
#
# Environment: exported to every rank with -x when set here: CUDA_VISIBLE_DEVICES,
# OMP_NUM_THREADS, OPENBLAS_*, NCCL_*, UCX_*, OMPI_MCA_*, LT_*, and each --env VAR (repeatable;
# --env VAR=VALUE sets it first). An unset name given with --env is an error.
#
# Options: --build DIR (default $LT_BUILD_DIR or build/ beside this script's repository);
# MPIRUN (default mpirun) names the launcher; MPIRUN_EXTRA_ARGS (words) go to mpirun before the
# program. --dry-run prints the command, shell-quoted on one line, and exits 0 without running
# it (the rank count goes to stderr). Exit status: 2 for usage errors (an unknown option, a
# missing '--', a missing or unreadable hostfile, no hosts, a bad count, an --np that
# contradicts the per-node count), else mpirun's.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog="$(basename "$0")"

usage() {
  cat <<EOF
usage: $prog [--hostfile FILE] [--gpus-per-node N | --ranks-per-node N] [--np N]
       [--bind-to core|numa|socket|none] [--map-by SPEC] [--env VAR[=VALUE] ...]
       [--build DIR] [--dry-run] -- <longtrain args>
EOF
}
die() {
  echo "$prog: error: $*" >&2
  usage >&2
  exit 2
}
# The words of a command as one line a POSIX shell reads back: safe words as they are, others
# in single quotes.
shell_quote() {
  local out="" word quote="'" escaped="'\\''"
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,+@%^-]+$ ]]; then
      out+=" $word"
    else
      out+=" '${word//$quote/$escaped}'"
    fi
  done
  echo "${out# }"
}

positive() {  # positive NAME VALUE
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"
}

hostfile=""
per_node=""
per_node_flag=""
np=""
bind=""
map_by=""
dry_run=0
build="${LT_BUILD_DIR:-$root/build}"
env_names=()
have_sep=0

set_per_node() {  # set_per_node FLAG VALUE
  [ -z "$per_node_flag" ] || [ "$per_node_flag" = "$1" ] ||
    die "give --gpus-per-node or --ranks-per-node, not both"
  per_node_flag="$1"
  per_node="$2"
}

while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    --*=*) value="${opt#*=}"; opt="${opt%%=*}"; shift ;;
    --hostfile|--gpus-per-node|--ranks-per-node|--np|--bind-to|--bind|--map-by|--env|--build)
      [ $# -ge 2 ] || die "$opt needs a value"
      value="$2"; shift 2 ;;
    *) value=""; shift ;;
  esac
  case "$opt" in
    --hostfile) hostfile="$value" ;;
    --gpus-per-node|--ranks-per-node) set_per_node "$opt" "$value" ;;
    --np) np="$value" ;;
    --bind-to|--bind) bind="$value" ;;
    --map-by) map_by="$value" ;;
    --env) env_names+=("$value") ;;
    --build) build="$value" ;;
    --dry-run) dry_run=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    --) have_sep=1; break ;;
    *) die "unknown option '$opt' (longtrain arguments go after '--')" ;;
  esac
done

[ "$have_sep" -eq 1 ] || die "missing '--' before the longtrain arguments"
[ $# -gt 0 ] || die "no longtrain arguments after '--' (e.g. -- train --config FILE)"
[ -n "$per_node" ] && positive "$per_node_flag" "$per_node"
[ -n "$np" ] && positive --np "$np"
[ -n "$per_node" ] || [ -n "$np" ] || die "give --gpus-per-node N, --ranks-per-node N or --np N"
if [ -z "$bind" ]; then
  if [ "$per_node_flag" = "--gpus-per-node" ]; then bind="numa"; else bind="core"; fi
fi
case "$bind" in
  core|numa|socket|none) ;;
  *) die "--bind-to must be core, numa, socket or none, got '$bind'" ;;
esac

hosts=1
if [ -n "$hostfile" ]; then
  [ -e "$hostfile" ] || die "hostfile '$hostfile' does not exist"
  { [ -f "$hostfile" ] && [ -r "$hostfile" ]; } || die "hostfile '$hostfile' is not a readable file"
  # One host per non-comment, non-blank line.
  hosts="$(awk '{ sub(/^[ \t]+/, "") } $0 == "" || /^#/ { next } { n++ } END { print n + 0 }' \
    "$hostfile")"
  [ "$hosts" -gt 0 ] || die "hostfile '$hostfile' lists no hosts"
fi
if [ -n "$per_node" ]; then
  total=$((hosts * per_node))
  [ -z "$np" ] || [ "$np" -eq "$total" ] ||
    die "--np $np contradicts $hosts host(s) x $per_node_flag $per_node = $total rank(s)"
  np="$total"
  [ -n "$map_by" ] || map_by="ppr:$per_node:node"
fi

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
    CUDA_VISIBLE_DEVICES|OMP_NUM_THREADS|OPENBLAS_*|NCCL_*|UCX_*|OMPI_MCA_*|LT_*) exports+=("$name") ;;
  esac
done < <(compgen -e | LC_ALL=C sort)

cmd=("${MPIRUN:-mpirun}")
[ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
cmd+=(-np "$np")
[ -n "$map_by" ] && cmd+=(--map-by "$map_by")
cmd+=(--bind-to "$bind")
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
  if [ -n "$per_node" ]; then
    echo "$prog: $hosts host(s) x $per_node rank(s) per node = $np rank(s)" >&2
  else
    echo "$prog: $np rank(s)" >&2
  fi
  shell_quote "${cmd[@]}"
  exit 0
fi
[ -x "$build/longtrain" ] || {
  echo "$prog: error: $build/longtrain not found: build first (launch/build.sh)" >&2
  exit 2
}
exec "${cmd[@]}"
