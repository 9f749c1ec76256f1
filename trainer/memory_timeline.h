// A ledger of predicted allocations: the memory tracker's arithmetic (current and peak bytes per
// category and in total) without allocating anything. The memory model replays a training step's
// allocations and frees on it, in the order the code makes them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/memory.h"

namespace lt {

class MemoryTimeline {
 public:
  void allocate(MemCategory c, std::int64_t bytes) {
    const auto i = static_cast<std::size_t>(c);
    current_[i] += bytes;
    total_ += bytes;
    peak_[i] = std::max(peak_[i], current_[i]);
    peak_total_ = std::max(peak_total_, total_);
  }
  void release(MemCategory c, std::int64_t bytes) {
    current_[static_cast<std::size_t>(c)] -= bytes;
    total_ -= bytes;
  }
  // Allocated and released again before anything else happens (a call's scratch).
  void transient(MemCategory c, std::int64_t bytes) {
    allocate(c, bytes);
    release(c, bytes);
  }

  std::int64_t current(MemCategory c) const { return current_[static_cast<std::size_t>(c)]; }
  std::int64_t peak(MemCategory c) const { return peak_[static_cast<std::size_t>(c)]; }
  std::int64_t peak_total() const { return peak_total_; }

 private:
  std::array<std::int64_t, kNumMemCategories> current_{};
  std::array<std::int64_t, kNumMemCategories> peak_{};
  std::int64_t total_ = 0;
  std::int64_t peak_total_ = 0;
};

}  // namespace lt
