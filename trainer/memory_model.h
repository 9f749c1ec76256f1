// The memory model: bytes per category that one rank of a training run will need at its peak,
// predicted from the config alone (nothing is allocated), with the formulas derived in
// docs/memory-model.md. This is what the planner will compare layouts with.
//
// Covered so far: weights, gradients and optimizer state exactly, for every ZeRO stage, dp, cp
// and tp (tied or untied, bf16 or fp32); activations for every recompute policy and per-layer
// mix under dp and cp without tensor parallelism. Workspace and communication are not predicted
// yet (0).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/memory.h"
#include "trainer/config.h"

namespace lt {

struct MemoryPrediction {
  std::array<std::int64_t, kNumMemCategories> peak{};  // per category, bytes on one rank
  std::int64_t parameters_per_rank = 0;                // this rank's slice, before ZeRO
  bool activations_predicted = false;  // false: the layout is outside what is covered (tp > 1)

  std::int64_t of(MemCategory c) const { return peak[static_cast<std::size_t>(c)]; }
};

MemoryPrediction predict_memory(const Config& config);

}  // namespace lt
