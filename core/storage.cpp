#include "core/storage.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace lt {
namespace {

constexpr std::size_t kAlignment = 64;

std::size_t round_up(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
}

// Training allocates the same shapes every step; keeping freed blocks by exact size avoids
// returning pages to the kernel and faulting them in again each step.
class HostBlockCache {
 public:
  void* allocate(std::size_t rounded) {
    std::lock_guard lock(mutex_);
    auto it = free_.find(rounded);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      return p;
    }
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      throw std::bad_alloc();
    }
    reserved_ += rounded;
    return p;
  }

  void release(void* p, std::size_t rounded) {
    std::lock_guard lock(mutex_);
    free_[rounded].push_back(p);
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        std::free(p);
        reserved_ -= size;
      }
      blocks.clear();
    }
  }

  std::size_t reserved() const {
    std::lock_guard lock(mutex_);
    return reserved_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::size_t reserved_ = 0;
};

HostBlockCache& host_cache() {
  static HostBlockCache cache;
  return cache;
}

}  // namespace

Storage::Storage(std::size_t bytes, MemCategory category, Device device)
    : bytes_(bytes), category_(category), device_(device) {
  if (device != Device::cpu) {
    throw std::runtime_error("this build has no " + std::string(device_name(device)) + " backend");
  }
  data_ = host_cache().allocate(round_up(bytes));
  MemoryTracker::for_device(device_).on_alloc(category_, static_cast<std::int64_t>(bytes_));
}

Storage::~Storage() {
  host_cache().release(data_, round_up(bytes_));
  MemoryTracker::for_device(device_).on_free(category_, static_cast<std::int64_t>(bytes_));
}

std::size_t host_reserved_bytes() {
  return host_cache().reserved();
}
void host_release_cached() {
  host_cache().release_cached();
}

}  // namespace lt
