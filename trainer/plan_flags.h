// The cluster and search options of `longtrain plan`: every figure of the cost model is a flag,
// with the defaults of trainer/cluster.h.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "trainer/cluster.h"

namespace lt {

struct PlanSettings {
  ClusterSpec cluster;
  double margin = 0.1;  // fraction of device memory kept free
  std::size_t top = 5;  // runners-up listed
};

// Usage lines for the flags with their defaults, for the CLI's help text.
std::string plan_flags_usage();

// Whether `flag` (e.g. "--gpu-mem") is one of them; each takes a value.
bool is_plan_flag(std::string_view flag);

// Applies `flag value`. Throws std::invalid_argument naming the flag, the value and what it
// expects.
void apply_plan_flag(PlanSettings& settings, std::string_view flag, std::string_view value);

}  // namespace lt
