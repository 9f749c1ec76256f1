# Runs test_mpi_deadline under mpirun and passes only if the job ended by itself, with a
# non-zero exit, within LIMIT seconds, and rank 0's stderr names the collective, the group,
# its members and the peer it waited for.
# Usage: cmake -DMPIEXEC=mpirun -DMPIEXEC_ARGS="-np|2|..." -DEXE=test_mpi_deadline -DLIMIT=20 -P
string(REPLACE "|" ";" args "${MPIEXEC_ARGS}")
string(TIMESTAMP start "%s")
execute_process(COMMAND ${MPIEXEC} ${args} ${EXE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT})
string(TIMESTAMP end "%s")
math(EXPR elapsed "${end} - ${start}")
message("exit: ${rc} after about ${elapsed} s\n--- stdout ---\n${out}--- stderr ---\n${err}")

if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not exit by itself within ${LIMIT} s: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0: the deadline did not end it")
endif()
set(expected "longtrain rank 0: timeout after [0-9.]+ s in all_reduce on group 'dp' \\(ranks \\[0, 1\\]\\) waiting for rank 1 \\(")
if(NOT err MATCHES "${expected}")
  message(FATAL_ERROR "rank 0 did not report the timeout as expected (${expected})")
endif()
message("deadline reported and job ended with exit code ${rc}")
