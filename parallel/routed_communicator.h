// A communicator that sends each call to one of two communicators over the same group by where
// its tensors live: device (cuda) tensors to `device` (NCCL), host tensors to `host` (MPI). GPU
// training moves parameters, gradients, activations and ring K/V blocks on the device while the
// trainer's control data (loss statistics, the planner's agreed figures, checkpoint
// coordination) stays in host memory; each half keeps its own call order, which is the same on
// every member because every member issues the same calls.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace lt {

// host and device must cover the same world ranks in the same order. rank(), size(), name()
// and world_ranks() are the host communicator's; barrier() runs on the host one. A call whose
// tensors are on different devices throws lt::Error naming the operation and both tensors.
std::unique_ptr<Communicator> make_device_routed_communicator(std::unique_ptr<Communicator> host,
                                                              std::unique_ptr<Communicator> device);

}  // namespace lt
