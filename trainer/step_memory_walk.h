// Replays the allocations of one training step of one rank on a MemoryTimeline, from the config
// alone: the persistent model state, then forward and backward of a micro-batch (every tensor a
// layer keeps or uses as scratch, collective scratch, ring buffers, ZeRO gathers and gradient
// buffers), then the gradient reduction. The order and sizes mirror layers/, parallel/ and the
// trainer; tests compare the result with the allocator's measured peaks.
#pragma once

#include "trainer/config.h"
#include "trainer/memory_timeline.h"

namespace lt {

void walk_training_step(const Config& config, MemoryTimeline& timeline);

}  // namespace lt
