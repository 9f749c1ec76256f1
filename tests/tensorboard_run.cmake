# A short real run that writes TensorBoard events beside metrics.jsonl, stopped and resumed so
# that the event directory holds two files: the fixture of tensorboard_python and
# plot_metrics_python. Passes when both runs exit 0.
# Usage: cmake -DEXE=longtrain -DDIR=work_dir -P tensorboard_run.cmake
file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")
file(WRITE "${DIR}/tiny.yaml" "
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 5, global_batch: 2, micro_batch: 1, eval_every: 2, eval_samples: 4, threads: 1}
optim: {warmup: 2}
precision: fp32
logging: {dir: run, tensorboard: run/tensorboard, peak_tflops: 0.1}
checkpoint: {dir: run/checkpoints}
")
# Three steps, then the same command with --resume auto continues to step 5 in a new event file.
foreach(args "--set;train.steps=3" "--resume;auto")
  execute_process(COMMAND ${EXE} train --config tiny.yaml ${args} WORKING_DIRECTORY "${DIR}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  message("longtrain train ${args}: exit ${rc}\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "longtrain train ${args} failed: ${rc}")
  endif()
endforeach()
