# Runs test_nccl_deadline under mpirun and passes only if the job ended by itself with exit code
# 3 within LIMIT seconds and rank 0's stderr names the collective, the group and its members.
# A SKIPPED line from the test (no GPU per rank) is passed on, and ctest reports the test skipped.
# Usage: cmake -DMPIEXEC=mpirun -DMPIEXEC_ARGS="-np|2|..." -DEXE=test_nccl_deadline -DLIMIT=90 -P
string(REPLACE "|" ";" args "${MPIEXEC_ARGS}")
execute_process(COMMAND ${MPIEXEC} ${args} ${EXE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT})
message("exit: ${rc}\n--- stdout ---\n${out}--- stderr ---\n${err}")
if(rc EQUAL 0 AND out MATCHES "\\[  SKIPPED \\]")
  return()
endif()
if(NOT rc EQUAL 3)
  message(FATAL_ERROR "the job did not end with the communicators' exit code 3 within ${LIMIT} s")
endif()
set(expected "longtrain rank 0: timeout after [0-9.]+ s in all_reduce on group 'dp' \\(ranks \\[0, 1\\]\\) waiting for every member")
if(NOT err MATCHES "${expected}")
  message(FATAL_ERROR "rank 0 did not report the timeout as expected (${expected})")
endif()
message("deadline reported and job ended with exit code 3")
