// Run under mpirun with 2 ranks by check_nccl_deadline.cmake: after a first all_reduce that both
// ranks complete (NCCL has connected them), rank 1 never enters the second one, so rank 0 must
// report the timeout (naming all_reduce and group 'dp') and end the job with exit code 3 within
// the timeout and some slack, long before rank 1 wakes up. Without a GPU per rank it prints a
// SKIPPED line and exits 0.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/tensor.h"
#include "parallel/mpi_communicator.h"
#include "parallel/nccl_communicator.h"
#include "parallel/runtime.h"
#include "tests/gpu_mpi/nccl_test_util.h"

int main(int argc, char** argv) {
  lt::DistributedRuntime runtime(&argc, &argv);
  if (runtime.world_size() != 2) {
    std::fprintf(stderr, "test_nccl_deadline runs with exactly 2 ranks\n");
    return 2;
  }
  std::string skip;
  {
    auto world = lt::make_world_communicator(60.0);
    skip = lt::test::nccl_skip_reason(runtime, *world);
  }
  if (!skip.empty()) {
    if (runtime.rank() == 0) std::printf("[  SKIPPED ] test_nccl_deadline: %s\n", skip.c_str());
    return 0;
  }
  runtime.select_local_gpu();
  // Long enough for NCCL's initialization and first connection, short for the test.
  constexpr double kTimeout = 10.0;
  constexpr double kSlack = 5.0;
  {
    auto dp = lt::make_nccl_communicator("dp", {0, 1}, kTimeout);
    const lt::Tensor t = lt::Tensor::zeros(lt::Shape{1024}, lt::DType::f32,
                                           lt::MemCategory::activations, lt::Device::cuda);
    dp->all_reduce(t);
    if (runtime.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::seconds(60));  // past the deadline, then leave
      return 0;
    }
    // The timeout must end the job within kTimeout + kSlack; otherwise exit 4, not 3.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::duration<double>(kTimeout + kSlack));
      std::fprintf(stderr, "no timeout reported within %.0f s\n", kTimeout + kSlack);
      std::_Exit(4);
    }).detach();
    dp->all_reduce(t);
  }
  std::fprintf(stderr, "all_reduce returned although rank 1 never joined\n");
  return 0;
}
