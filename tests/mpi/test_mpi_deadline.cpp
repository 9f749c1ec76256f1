// Run under mpirun with 2 ranks by check_deadline.cmake: rank 1 never enters the all_reduce,
// so rank 0 must report the timeout (naming all_reduce, group 'dp' and rank 1) and end the
// job with a non-zero exit code long before rank 1 wakes up.
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/tensor.h"
#include "parallel/mpi_communicator.h"
#include "parallel/runtime.h"

int main(int argc, char** argv) {
  lt::DistributedRuntime runtime(&argc, &argv);
  if (runtime.world_size() != 2) {
    std::fprintf(stderr, "test_mpi_deadline runs with exactly 2 ranks\n");
    return 2;
  }
  {
    auto dp = lt::make_mpi_communicator("dp", {0, 1}, /*timeout_s=*/1.5);
    if (runtime.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::seconds(10));  // past the deadline, then leave
      return 0;
    }
    const lt::Tensor t =
        lt::Tensor::zeros(lt::Shape{1024}, lt::DType::f32, lt::MemCategory::activations);
    dp->all_reduce(t);
  }
  std::fprintf(stderr, "all_reduce returned although rank 1 never joined\n");
  return 0;
}
