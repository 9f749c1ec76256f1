// Shared by the NCCL tests under mpirun: whether this job can run them at all.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

#include "core/storage.h"
#include "core/tensor.h"
#include "parallel/communicator.h"
#include "parallel/runtime.h"

namespace lt::test {

// Empty when every rank has a GPU of its own (NCCL refuses two members of one communicator on
// the same GPU); otherwise why the NCCL tests skip. Decided alike on every rank (one all-reduce
// over `world`, an MPI communicator), so all ranks run or all skip: a rank that ran alone would
// wait for the others until its deadline.
inline std::string nccl_skip_reason(const DistributedRuntime& runtime, Communicator& world) {
  const int devices = cuda_device_count();
  const bool enough_here = devices >= runtime.local_size();
  Tensor missing = Tensor::zeros(Shape{1}, DType::i32, MemCategory::workspace);
  missing.data<std::int32_t>()[0] = enough_here ? 0 : 1;
  world.all_reduce(missing, ReduceOp::max);
  if (missing.data<std::int32_t>()[0] == 0) return "";
  std::ostringstream reason;
  if (enough_here) {
    reason << "another node has fewer CUDA devices than ranks";
  } else if (devices == 0) {
    reason << "no CUDA device";
  } else {
    reason << "needs a GPU per rank (NCCL refuses two members of a communicator on one GPU): "
           << runtime.local_size() << " ranks on this node, " << devices << " CUDA device"
           << (devices == 1 ? "" : "s");
  }
  return reason.str();
}

}  // namespace lt::test
