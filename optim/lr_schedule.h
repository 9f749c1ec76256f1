// Learning-rate schedules: linear warmup, then cosine (or linear) decay to min_lr, or constant.
#pragma once

#include <cstdint>
#include <string>

namespace lt {

struct LrSchedule {
  std::string kind = "cosine";  // cosine | linear | constant
  double lr = 3e-4;
  double min_lr = 3e-5;
  std::int64_t warmup = 0;
  std::int64_t total_steps = 1;

  // Learning rate for 0-based step `step`.
  double at(std::int64_t step) const;
};

}  // namespace lt
