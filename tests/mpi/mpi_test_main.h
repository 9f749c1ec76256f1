// main() for GoogleTest binaries run under mpirun: every rank runs the tests, rank 0 prints, and
// the process exits non-zero if any test failed on this rank (mpirun then fails the job).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <memory>

#include "parallel/runtime.h"

namespace lt {

// `configure` sees the arguments GoogleTest left (e.g. --cp=2) before the tests run.
inline int run_mpi_tests(int argc, char** argv, DistributedRuntime*& runtime_slot,
                         const std::function<void(int, char**)>& configure = {}) {
  DistributedRuntime runtime(&argc, &argv);
  runtime_slot = &runtime;
  ::testing::InitGoogleTest(&argc, argv);
  if (configure) configure(argc, argv);
  // Other ranks stay quiet unless LT_TEST_ALL_RANKS is set (their failures still fail the job).
  if (runtime.rank() != 0 && std::getenv("LT_TEST_ALL_RANKS") == nullptr) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    std::unique_ptr<::testing::TestEventListener> quiet(
        listeners.Release(listeners.default_result_printer()));
  }
  const int failed = RUN_ALL_TESTS();
  runtime_slot = nullptr;
  return failed;
}

}  // namespace lt
