#include "parallel/job_communicators.h"

#include "parallel/mpi_communicator.h"
#include "parallel/nccl_communicator.h"
#include "parallel/routed_communicator.h"

namespace lt {

CommunicatorFactory make_job_communicators(Device device, double timeout_s) {
  if (device == Device::cpu) {
    return [timeout_s](const std::string& name, const std::vector<int>& ranks) {
      return make_mpi_communicator(name, ranks, timeout_s);
    };
  }
  return [timeout_s](const std::string& name, const std::vector<int>& ranks) {
    // The MPI one first: its handshake names a member that never arrives before NCCL waits.
    std::unique_ptr<Communicator> host = make_mpi_communicator(name, ranks, timeout_s);
    return make_device_routed_communicator(std::move(host),
                                           make_nccl_communicator(name, ranks, timeout_s));
  };
}

}  // namespace lt
