// The memory model: bytes per category that one rank of a training run will need at its peak,
// predicted from the config alone (nothing is allocated), with the formulas derived in
// docs/memory-model.md. The planner compares layouts with it.
//
// The prediction replays one training step's allocations in the order the code makes them
// (trainer/step_memory_walk): model state under every ZeRO stage, activations under every
// recompute policy, tp (with or without sequence parallelism), cp and dp, workspace (GEMM,
// attention and LM-head scratch) and communication buffers (ring attention, reduction scratch).
#pragma once

#include <array>
#include <cstdint>

#include "core/memory.h"
#include "trainer/config.h"

namespace lt {

struct MemoryPrediction {
  std::array<std::int64_t, kNumMemCategories> peak{};  // per category, bytes on one rank
  std::int64_t parameters_per_rank = 0;                // this rank's slice, before ZeRO
  // The peak of the sum of all categories (at most the sum of the per-category peaks, which
  // do not all happen at the same moment).
  std::int64_t total = 0;

  std::int64_t of(MemCategory c) const { return peak[static_cast<std::size_t>(c)]; }
};

// For train.device cpu the CPU kernels' scratch is included (attention tiles per thread, bf16
// GEMM operand copies when the BLAS lacks bf16); for cuda those are left out.
MemoryPrediction predict_memory(const Config& config);

}  // namespace lt
