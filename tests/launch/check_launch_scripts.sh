#!/usr/bin/env bash
# Checks the cluster launch scripts without a cluster: the exact commands that launch/mpirun.sh
# --dry-run and launch/slurm.sbatch DRY_RUN=1 print for given inputs, the exit code 2 and message
# of each bad argument, and slurm.sbatch's signal path (with stand-ins for srun and scontrol):
# SIGUSR1 reaches the step, and a step that then exits 0 gets the job requeued.
# Usage: check_launch_scripts.sh LAUNCH_DIR
set -uo pipefail
launch="$(cd "${1:?usage: check_launch_scripts.sh LAUNCH_DIR}" && pwd)"
work="$(mktemp -d)"
# A stand-in step left running by a failed check is stopped by its recorded pid.
trap '[ -e "$work/step_pid" ] && kill "$(cat "$work/step_pid")" 2>/dev/null; rm -rf "$work"' EXIT
failures=0
checks=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# A clean environment: only the variables a case sets reach the script.
clean_env=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}")
root_flag=""
[ "$(id -u)" -eq 0 ] && root_flag=" --allow-run-as-root"

# expect_output NAME EXPECTED COMMAND...: exit 0 and exactly EXPECTED on stdout.
expect_output() {
  local name="$1" expected="$2"
  shift 2
  checks=$((checks + 1))
  local out rc
  out="$("$@" 2>"$work/stderr")"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit $rc: $(cat "$work/stderr")"
  elif [ "$out" != "$expected" ]; then
    fail "$name:"$'\n'"  got      $out"$'\n'"  expected $expected"
  fi
}

# expect_error NAME MESSAGE COMMAND...: exit 2 with MESSAGE on stderr.
expect_error() {
  local name="$1" message="$2"
  shift 2
  checks=$((checks + 1))
  local rc
  "$@" >"$work/stdout" 2>"$work/stderr"
  rc=$?
  if [ "$rc" -ne 2 ]; then
    fail "$name: exit $rc, expected 2 (stderr: $(cat "$work/stderr"))"
  elif ! grep -qF -- "$message" "$work/stderr"; then
    fail "$name: stderr lacks '$message': $(cat "$work/stderr")"
  fi
}

# --- launch/mpirun.sh ---------------------------------------------------------------------------
mpirun_sh=("${clean_env[@]}" "$launch/mpirun.sh")
printf '# two nodes\nnode1 slots=8\n\n   node2 slots=8 max_slots=8\n' >"$work/hosts"
: >"$work/empty_hosts"

expect_output "mpirun: hostfile, one rank per GPU, environment passed through" \
  "mpirun --hostfile $work/hosts -np 16 --map-by ppr:8:node --bind-to numa$root_flag -x CUDA_VISIBLE_DEVICES -x LT_SEED -x NCCL_DEBUG -x NCCL_IB_HCA -x OMP_NUM_THREADS -x UCX_TLS /opt/lt/build/longtrain train --config configs/llama3-70b-128k.yaml --resume auto" \
  "${clean_env[@]}" NCCL_DEBUG=INFO NCCL_IB_HCA=mlx5 UCX_TLS=rc CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 \
  LT_SEED=1 OMP_NUM_THREADS=12 UNRELATED=1 "$launch/mpirun.sh" --hostfile "$work/hosts" \
  --gpus-per-node 8 --build /opt/lt/build --dry-run -- train --config configs/llama3-70b-128k.yaml \
  --resume auto

expect_output "mpirun: --np alone, no binding, quoted arguments" \
  "mpirun -np 4 --bind-to none$root_flag /opt/lt/build/longtrain train --config 'my run.yaml' --set 'logging.dir=runs/\$x' --set 'it'\\''s'" \
  "${mpirun_sh[@]}" --np 4 --bind-to none --build=/opt/lt/build --dry-run -- train \
  --config "my run.yaml" --set 'logging.dir=runs/$x' --set "it's"

expect_output "mpirun: CPU ranks per node, --np that agrees, --map-by, --env, MPIRUN, extra args" \
  "mpiexec --hostfile $work/hosts -np 4 --map-by ppr:2:numa:PE=4 --bind-to core$root_flag -x MY_VAR --oversubscribe --mca btl self,vader /b/longtrain plan --config c.yaml" \
  "${clean_env[@]}" MPIRUN=mpiexec "MPIRUN_EXTRA_ARGS=--oversubscribe --mca btl self,vader" \
  "$launch/mpirun.sh" --hostfile="$work/hosts" --ranks-per-node 2 --np 4 --map-by ppr:2:numa:PE=4 \
  --env MY_VAR=7 --build /b --dry-run -- plan --config c.yaml

expect_error "mpirun: no --" "missing '--'" "${mpirun_sh[@]}" --np 2
expect_error "mpirun: longtrain arguments without --" "unknown option 'train'" \
  "${mpirun_sh[@]}" --np 2 train
expect_error "mpirun: nothing after --" "no longtrain arguments" "${mpirun_sh[@]}" --np 2 --
expect_error "mpirun: no rank count" "give --gpus-per-node N, --ranks-per-node N or --np N" \
  "${mpirun_sh[@]}" --dry-run -- train
expect_error "mpirun: zero GPUs" "--gpus-per-node must be a positive integer, got '0'" \
  "${mpirun_sh[@]}" --gpus-per-node 0 -- train
expect_error "mpirun: non-numeric np" "--np must be a positive integer, got 'four'" \
  "${mpirun_sh[@]}" --np four -- train
expect_error "mpirun: --np against the per-node count" \
  "--np 12 contradicts 2 host(s) x --gpus-per-node 8 = 16 rank(s)" \
  "${mpirun_sh[@]}" --hostfile "$work/hosts" --gpus-per-node 8 --np 12 -- train
expect_error "mpirun: both per-node counts" "give --gpus-per-node or --ranks-per-node, not both" \
  "${mpirun_sh[@]}" --gpus-per-node 8 --ranks-per-node 8 -- train
expect_error "mpirun: missing hostfile" "hostfile '$work/nope' does not exist" \
  "${mpirun_sh[@]}" --hostfile "$work/nope" --gpus-per-node 8 -- train
expect_error "mpirun: empty hostfile" "hostfile '$work/empty_hosts' lists no hosts" \
  "${mpirun_sh[@]}" --hostfile "$work/empty_hosts" --gpus-per-node 8 -- train
expect_error "mpirun: bad binding" "--bind-to must be core, numa, socket or none, got 'cores'" \
  "${mpirun_sh[@]}" --np 2 --bind-to cores -- train
expect_error "mpirun: unknown option" "unknown option '--gpus'" "${mpirun_sh[@]}" --gpus 8 -- train
expect_error "mpirun: option without its value" "--hostfile needs a value" \
  "${mpirun_sh[@]}" --hostfile
expect_error "mpirun: --env of an unset variable" "--env NOT_SET_HERE: the variable is not set" \
  "${mpirun_sh[@]}" --np 2 --env NOT_SET_HERE -- train

# --- launch/slurm.sbatch ------------------------------------------------------------------------
slurm_env=("${clean_env[@]}" SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=4 SLURM_NTASKS_PER_NODE=8
           SLURM_GPUS_ON_NODE=8 SLURM_SUBMIT_DIR=/shared/longtrain)

expect_output "slurm: dry run of a 4-node job with CPU binding" \
  "srun --mpi=pmix --kill-on-bad-exit=1 --nodes=4 --ntasks=32 --ntasks-per-node=8 --cpus-per-task=12 --cpu-bind=cores /shared/longtrain/build/longtrain train --config configs/llama3-70b-128k.yaml --set 'checkpoint.dir=ckpt dir' --resume auto" \
  "${slurm_env[@]}" SLURM_CPUS_PER_TASK=12 DRY_RUN=1 bash "$launch/slurm.sbatch" \
  --config configs/llama3-70b-128k.yaml --set "checkpoint.dir=ckpt dir"

expect_output "slurm: dry run without cpus-per-task, LT_BUILD_DIR and SRUN" \
  "/opt/slurm/bin/srun --mpi=pmix --kill-on-bad-exit=1 --nodes=4 --ntasks=32 --ntasks-per-node=8 /opt/lt/build/longtrain train --config c.yaml --resume auto" \
  "${slurm_env[@]}" LT_BUILD_DIR=/opt/lt/build SRUN=/opt/slurm/bin/srun DRY_RUN=1 \
  bash "$launch/slurm.sbatch" --config c.yaml

expect_error "slurm: no arguments" "no longtrain arguments" \
  "${slurm_env[@]}" DRY_RUN=1 bash "$launch/slurm.sbatch"
expect_error "slurm: outside a job" "not inside a Slurm job" \
  "${clean_env[@]}" DRY_RUN=1 bash "$launch/slurm.sbatch" --config c.yaml
expect_error "slurm: tasks per node differ from GPUs" \
  "8 tasks per node but 4 GPUs per node" \
  "${slurm_env[@]}" SLURM_GPUS_ON_NODE=4 DRY_RUN=1 bash "$launch/slurm.sbatch" --config c.yaml
expect_error "slurm: bad tasks per node" "SLURM_NTASKS_PER_NODE must be a number, got '8(x4)'" \
  "${slurm_env[@]}" "SLURM_NTASKS_PER_NODE=8(x4)" DRY_RUN=1 bash "$launch/slurm.sbatch" --config c.yaml

# The signal path: a stand-in step that saves and exits 0 on SIGUSR1, a stand-in scontrol that
# records its arguments.
mkdir -p "$work/bin"
cat >"$work/bin/fake_srun" <<'EOF'
#!/usr/bin/env bash
trap 'echo "step: SIGUSR1: checkpoint saved"; exit 0' USR1
echo "$$" >"$FAKE_DIR/step_pid"
touch "$FAKE_DIR/ready"
while :; do sleep 0.05; done
EOF
cat >"$work/bin/scontrol" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$FAKE_DIR/scontrol_calls"
EOF
chmod +x "$work/bin/fake_srun" "$work/bin/scontrol"

checks=$((checks + 1))
env -i "PATH=$work/bin:$PATH" "HOME=${HOME:-/tmp}" FAKE_DIR="$work" SRUN=fake_srun \
  SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=1 SLURM_NTASKS_PER_NODE=2 SLURM_SUBMIT_DIR="$work" \
  bash "$launch/slurm.sbatch" --config c.yaml >"$work/job.out" 2>&1 &
job=$!
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
kill -USR1 "$job"
wait "$job"
rc=$?
if [ "$rc" -ne 0 ]; then
  fail "slurm: SIGUSR1: exit $rc: $(cat "$work/job.out")"
elif ! grep -q "step: SIGUSR1: checkpoint saved" "$work/job.out"; then
  fail "slurm: SIGUSR1 did not reach the step: $(cat "$work/job.out")"
elif [ "$(cat "$work/scontrol_calls" 2>/dev/null)" != "requeue 4242" ]; then
  fail "slurm: SIGUSR1: expected 'scontrol requeue 4242', got '$(cat "$work/scontrol_calls" 2>/dev/null)'"
fi

# A step that ends by itself (training done) is not requeued.
checks=$((checks + 1))
rm -f "$work/scontrol_calls"
printf '#!/usr/bin/env bash\nexit 0\n' >"$work/bin/fake_srun"
env -i "PATH=$work/bin:$PATH" "HOME=${HOME:-/tmp}" FAKE_DIR="$work" SRUN=fake_srun \
  SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=1 SLURM_NTASKS_PER_NODE=2 SLURM_SUBMIT_DIR="$work" \
  bash "$launch/slurm.sbatch" --config c.yaml >"$work/job.out" 2>&1
rc=$?
if [ "$rc" -ne 0 ] || [ -e "$work/scontrol_calls" ]; then
  fail "slurm: a finished run: exit $rc, scontrol calls '$(cat "$work/scontrol_calls" 2>/dev/null)'"
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
