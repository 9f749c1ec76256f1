#include "core/memory.h"

#include <algorithm>

namespace lt {

void MemoryTracker::on_alloc(MemCategory c, std::int64_t bytes) {
  std::lock_guard lock(mutex_);
  const auto i = static_cast<std::size_t>(c);
  state_.current[i] += bytes;
  state_.current_total += bytes;
  state_.peak[i] = std::max(state_.peak[i], state_.current[i]);
  state_.largest[i] = std::max(state_.largest[i], bytes);
  state_.peak_total = std::max(state_.peak_total, state_.current_total);
}

void MemoryTracker::on_free(MemCategory c, std::int64_t bytes) {
  std::lock_guard lock(mutex_);
  state_.current[static_cast<std::size_t>(c)] -= bytes;
  state_.current_total -= bytes;
}

MemorySnapshot MemoryTracker::snapshot() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void MemoryTracker::reset_peaks() {
  std::lock_guard lock(mutex_);
  state_.peak = state_.current;
  state_.largest.fill(0);
  state_.peak_total = state_.current_total;
}

MemoryTracker& MemoryTracker::for_device(Device d) {
  static MemoryTracker cpu;
  static MemoryTracker cuda;
  return d == Device::cpu ? cpu : cuda;
}

}  // namespace lt
