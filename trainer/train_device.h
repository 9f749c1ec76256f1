// Which device a training process runs on (train.device), decided before anything is allocated:
// the CLI makes the chosen GPU current and picks the job's communicators from it, and the
// Trainer checks the same rules.
#pragma once

#include "core/device.h"
#include "trainer/config.h"

namespace lt {

// train.device for one rank of a job of world_size ranks, local_size of them on this node:
//  - cpu;
//  - cuda: one GPU per rank, so this node needs at least local_size visible CUDA devices, and a
//    job of several ranks needs the NCCL communicator in the build;
//  - auto: cuda when those hold, else cpu.
// Throws ConfigError naming the config file and what is missing.
Device resolve_train_device(const Config& config, int world_size, int local_size);

}  // namespace lt
