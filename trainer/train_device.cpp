#include "trainer/train_device.h"

#include <fmt/format.h>

#include <string>

#include "core/storage.h"
#include "parallel/nccl_communicator.h"

namespace lt {
namespace {

// Why this job cannot run on cuda here; empty when it can.
std::string cuda_obstacle(int world_size, int local_size) {
  const int devices = cuda_device_count();
  if (devices == 0) {
    return cuda_backend_built()
               ? "no CUDA device is visible to this process"
               : "this build has only the CPU backend (no CUDA toolkit at build time)";
  }
  if (devices < local_size) {
    return fmt::format(
        "{} ranks run on this node but it has {} visible CUDA device{}: one rank per GPU (start "
        "at most {} ranks per node)",
        local_size, devices, devices == 1 ? "" : "s", devices);
  }
  if (world_size > 1 && !have_nccl()) {
    return fmt::format(
        "a job of {} ranks needs the NCCL communicator, which this build lacks (NCCL was not "
        "found at configure time; see LONGTRAIN_NCCL)",
        world_size);
  }
  return "";
}

}  // namespace

Device resolve_train_device(const Config& c, int world_size, int local_size) {
  if (c.train.device == "cpu") return Device::cpu;
  const std::string obstacle = cuda_obstacle(world_size, local_size);
  if (c.train.device == "auto") return obstacle.empty() ? Device::cuda : Device::cpu;
  if (!obstacle.empty()) {
    const std::string origin = c.source_file.empty() ? "config" : c.source_file;
    throw ConfigError(
        fmt::format("{}: train.device is 'cuda' but {}; use 'cpu' or 'auto'", origin, obstacle));
  }
  return Device::cuda;
}

}  // namespace lt
