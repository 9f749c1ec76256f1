# Trains the quickstart under mpirun with parallel.mode auto and passes only if the job
# succeeds, rank 0 logged the planner's layout for the job's ranks (tp x cp x dp = the rank
# count), and every step was trained and written to metrics.jsonl.
# Usage: cmake -DMPIEXEC=mpirun -DMPIEXEC_ARGS="-np|4|..." -DRANKS=4 -DEXE=longtrain
#              -DCONFIG=configs/quickstart.yaml -DLOGDIR=dir -DSTEPS=20 -P check_auto_plan.cmake
string(REPLACE "|" ";" args "${MPIEXEC_ARGS}")
file(REMOVE_RECURSE "${LOGDIR}")
execute_process(COMMAND ${MPIEXEC} ${args} ${EXE} train --config ${CONFIG}
                        --set parallel.mode=auto --set train.steps=${STEPS}
                        --set train.eval_every=0 --set logging.dir=${LOGDIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
message("exit: ${rc}\n--- stdout ---\n${out}--- stderr ---\n${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the auto-mode run failed: ${rc}")
endif()
set(choice "planner: tp ([0-9]+) cp ([0-9]+) dp ([0-9]+) zero [0-3] micro_batch [0-9]+ recompute ")
if(NOT out MATCHES "${choice}")
  message(FATAL_ERROR "rank 0 did not log the planner's choice (${choice})")
endif()
math(EXPR world "${CMAKE_MATCH_1} * ${CMAKE_MATCH_2} * ${CMAKE_MATCH_3}")
if(NOT world EQUAL RANKS)
  message(FATAL_ERROR "the chosen layout has ${world} ranks, the job ${RANKS}")
endif()
if(NOT out MATCHES "step ${STEPS}/${STEPS}")
  message(FATAL_ERROR "the run did not reach step ${STEPS}")
endif()
file(STRINGS "${LOGDIR}/metrics.jsonl" train_lines REGEX "\"split\": \"train\"")
list(LENGTH train_lines logged)
if(NOT logged EQUAL STEPS)
  message(FATAL_ERROR "metrics.jsonl has ${logged} training steps, expected ${STEPS}")
endif()
file(REMOVE_RECURSE "${LOGDIR}")
message("the planner's layout trained ${STEPS} steps on ${RANKS} ranks")
