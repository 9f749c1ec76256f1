// `parallel.mode: auto`: before the trainer is built, the planner chooses the layout for the
// job's ranks, and the config is rewritten to it (mode manual).
#pragma once

#include <cstdint>
#include <string>

#include "trainer/config.h"

namespace lt {

struct AutoLayout {
  Config config;        // the layout keys set, parallel.mode manual
  std::string message;  // the choice, for the log
};

// Memory a rank may plan for: parallel.memory_per_rank_gib, or else the node's available
// memory shared by its `local_ranks`.
std::int64_t auto_memory_per_rank(const Config& config, std::int64_t local_ranks);

// Plans `config` for `world` CPU ranks, `local_ranks` per node, `memory_per_rank` bytes each
// (every rank must pass the same figures to get the same plan). Throws ConfigError with the
// shortfall and the levers when no layout fits.
AutoLayout resolve_auto_layout(const Config& config, std::int64_t world, std::int64_t local_ranks,
                               std::int64_t memory_per_rank);

}  // namespace lt
