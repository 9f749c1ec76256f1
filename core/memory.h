// Memory accounting: every allocation carries a category; current and peak bytes are kept per
// category and in total, per device.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "core/device.h"

namespace lt {

enum class MemCategory : std::uint8_t {
  weights,
  grads,
  optimizer,
  activations,
  workspace,
  communication,
};
inline constexpr std::size_t kNumMemCategories = 6;

constexpr std::string_view category_name(MemCategory c) {
  constexpr std::array<std::string_view, kNumMemCategories> names = {
      "weights", "grads", "optimizer", "activations", "workspace", "communication"};
  return names[static_cast<std::size_t>(c)];
}

struct MemorySnapshot {
  std::array<std::int64_t, kNumMemCategories> current{};
  std::array<std::int64_t, kNumMemCategories> peak{};
  std::array<std::int64_t, kNumMemCategories> largest{};  // largest single allocation
  std::int64_t current_total = 0;
  std::int64_t peak_total = 0;

  std::int64_t current_of(MemCategory c) const { return current[static_cast<std::size_t>(c)]; }
  std::int64_t peak_of(MemCategory c) const { return peak[static_cast<std::size_t>(c)]; }
  std::int64_t largest_of(MemCategory c) const { return largest[static_cast<std::size_t>(c)]; }
};

// Tracks bytes in use per category. Thread-safe. One instance per device.
class MemoryTracker {
 public:
  void on_alloc(MemCategory c, std::int64_t bytes);
  void on_free(MemCategory c, std::int64_t bytes);
  MemorySnapshot snapshot() const;
  // Starts a new peak window: peaks restart from the current values, largest allocations from 0.
  void reset_peaks();

  static MemoryTracker& for_device(Device d);

 private:
  mutable std::mutex mutex_;
  MemorySnapshot state_;
};

}  // namespace lt
