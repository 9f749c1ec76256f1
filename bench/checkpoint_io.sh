#!/usr/bin/env bash
# Checkpoint save and load speed against the disk's own speed, measured the same way.
#
# Trains a ~134M-parameter Llama (dim 768, 12 layers, ffn 2048, vocab 32000) for four steps on
# RANKS ranks (default 4, dp with ZeRO-1 so that every rank writes a quarter of the state),
# saving a checkpoint after every step (fp32 master weights and both Adam moments: 12 bytes per
# parameter, 1.6 GB), then resumes from the last one; the trainer's own log lines give the save
# and load times (the whole protocol: files, fsync, manifest, rename; loading verifies every
# file's CRC32C before reading). The disk's raw speed is `dd` writing the same number of bytes with conv=fsync (as the
# checkpoint's writers fsync their files) from incompressible data in memory, and reading them
# back. Each measurement is repeated
# REPEATS times (default 3) and the median is printed, with the ratio checkpoint / dd.
#
# Usage: bench/checkpoint_io.sh [ranks] [repeats]      (BENCH_DIR: where to write, default /tmp)
# The reads follow the writes, so both the checkpoint load and dd's read usually come from the
# page cache; they compare like with like, not with the device.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks="${1:-4}"
repeats="${2:-3}"
build="${LT_BUILD_DIR:-$root/build}"
[ -x "$build/longtrain" ] || LT_BUILD_DIR="$build" "$root/launch/build.sh" >/dev/null
work="$(mktemp -d "${BENCH_DIR:-/tmp}/lt_ckpt_bench.XXXXXX")"
mpi_args=(--bind-to none --oversubscribe -np "$ranks")
[ "$(id -u)" -eq 0 ] && mpi_args+=(--allow-run-as-root)

cat > "$work/config.yaml" <<EOF
model: {dim: 768, layers: 12, heads: 12, kv_heads: 12, ffn: 2048, vocab: 32000}
data: {source: synthetic, task: associative_recall, seq_len: 64, num_pairs: 4, num_queries: 8}
train: {steps: 1, global_batch: $ranks, micro_batch: 1, eval_every: 0, threads: 1}
precision: fp32
parallel: {dp: $ranks, zero_stage: 1}
logging: {dir: "", level: info}
checkpoint: {dir: $work/ck, keep: 1}
EOF

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
seconds_of() { grep -o "$1 in [0-9.]* s" | grep -o '[0-9.]* s' | tr -d ' s'; }

# dd's source: incompressible bytes in memory (zeros would flatter a disk that compresses or
# deduplicates them), one file per rank, made once.
sources="$(mktemp -d /dev/shm/lt_ckpt_bench.XXXXXX)"
trap 'rm -rf "$work" "$sources"' EXIT

first_save=() save=() load=() dd_write=() dd_read=()
for i in $(seq "$repeats"); do
  rm -rf "$work/ck"
  # Four steps with a checkpoint after each (keeping one): the first save writes into memory the
  # machine has not used yet (on a VM the host backs those pages first, which costs more than
  # the write); the later ones are the steady state of a long run.
  out=$(mpirun "${mpi_args[@]}" "$build/longtrain" train --config "$work/config.yaml" \
    --set train.steps=4 --set checkpoint.every=1 2>&1)
  times=($(echo "$out" | seconds_of "saved to [^ ]*"))
  first_save+=("${times[0]}")
  save+=("$(printf '%s\n' "${times[@]:1}" | median)")
  bytes=$(du -cb "$work"/ck/step_*/rank_*.safetensors | tail -1 | cut -f1)
  out=$(mpirun "${mpi_args[@]}" "$build/longtrain" train --config "$work/config.yaml" \
    --set train.steps=4 --set checkpoint.resume=auto 2>&1)
  load+=("$(echo "$out" | seconds_of "zero [0-9]*)")")
  # The same bytes through dd, one file per rank written in parallel, like the checkpoint.
  per_rank=$((bytes / ranks / 1048576))
  for r in $(seq "$ranks"); do
    [ -f "$sources/src_$r" ] ||
      head -c "$((per_rank * 1048576))" /dev/urandom > "$sources/src_$r"
  done
  t0=$(date +%s.%N)
  for r in $(seq "$ranks"); do
    dd if="$sources/src_$r" of="$work/dd_$r" bs=8M conv=fsync status=none &
  done
  wait
  t1=$(date +%s.%N)
  for r in $(seq "$ranks"); do dd if="$work/dd_$r" of=/dev/null bs=8M status=none & done
  wait
  t2=$(date +%s.%N)
  rm -f "$work"/dd_*
  dd_write+=("$(echo "$t1 - $t0" | bc -l)")
  dd_read+=("$(echo "$t2 - $t1" | bc -l)")
done

gb=$(echo "$bytes / 1000000000" | bc -l)
s_first=$(printf '%s\n' "${first_save[@]}" | median)
s_save=$(printf '%s\n' "${save[@]}" | median)
s_load=$(printf '%s\n' "${load[@]}" | median)
s_dd_write=$(printf '%s\n' "${dd_write[@]}" | median)
s_dd_read=$(printf '%s\n' "${dd_read[@]}" | median)
rate() { echo "$gb / $1" | bc -l; }
percent() { echo "100 * $2 / $1" | bc -l; }
printf 'checkpoint of %.2f GB on %d ranks (medians of %d runs)\n' "$gb" "$ranks" "$repeats"
printf '  %-32s %8s %8s %14s\n' "" seconds "GB/s" "of dd write"
printf '  %-32s %8.2f %8.3f %13.0f%%\n' "dd write + fsync" "$s_dd_write" "$(rate "$s_dd_write")" 100
printf '  %-32s %8.2f %8.3f %13.0f%%\n' "checkpoint save, steady state" "$s_save" \
  "$(rate "$s_save")" "$(percent "$s_save" "$s_dd_write")"
printf '  %-32s %8.2f %8.3f %13.0f%%\n' "checkpoint save, first of a run" "$s_first" \
  "$(rate "$s_first")" "$(percent "$s_first" "$s_dd_write")"
printf '  %-32s %8.2f %8.3f %13.0f%%\n' "checkpoint load (verify + read)" "$s_load" \
  "$(rate "$s_load")" "$(percent "$s_load" "$s_dd_write")"
printf '  %-32s %8.2f %8.3f %13.0f%%\n' "dd read" "$s_dd_read" "$(rate "$s_dd_read")" \
  "$(percent "$s_dd_read" "$s_dd_write")"
