// Storage: one tagged allocation. Its bytes count against its category in the device's
// MemoryTracker for as long as it lives.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"
#include "core/memory.h"

namespace lt {

class Storage {
 public:
  Storage(std::size_t bytes, MemCategory category, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  MemCategory category() const { return category_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  MemCategory category_;
  Device device_;
};

// Bytes the host caching allocator holds (in use plus cached for reuse).
std::size_t host_reserved_bytes();
// Returns cached, unused host blocks to the system.
void host_release_cached();

}  // namespace lt
