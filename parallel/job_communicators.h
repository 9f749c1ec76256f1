// The communicators of a training job under mpirun, one per mesh group: MPI for a CPU job; for a
// GPU job (one rank per GPU) an MPI communicator for the host tensors and an NCCL one for the
// device tensors of each group, routed by make_device_routed_communicator.
#pragma once

#include "core/device.h"
#include "parallel/mesh.h"

namespace lt {

// Each factory call is collective over its group's members (same calls in the same order on
// every member). For Device::cuda the caller has made its GPU current
// (DistributedRuntime::select_local_gpu) before the first call, and the build has NCCL.
CommunicatorFactory make_job_communicators(Device device, double timeout_s);

}  // namespace lt
