// make_nccl_communicator in a build without NCCL (no CUDA backend, or NCCL not found): callers
// compile the same way in every build and get a clear error at run time.
#include "core/error.h"
#include "parallel/nccl_communicator.h"

namespace lt {

bool have_nccl() {
  return false;
}

std::unique_ptr<Communicator> make_nccl_communicator(std::string name, std::vector<int>, double) {
  throw Error("make_nccl_communicator('" + name +
              "'): this build has no NCCL (it needs the CUDA backend and NCCL at configure "
              "time; see LONGTRAIN_NCCL in parallel/CMakeLists.txt)");
}

}  // namespace lt
