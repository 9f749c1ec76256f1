// The caching device allocator (see runtime.h). Training allocates the same shapes every step, so
// freed blocks are kept by exact (rounded) size and device and handed out again without a
// cudaMalloc/cudaFree pair, which would synchronize the device.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"

namespace lt::cuda {
namespace {

constexpr std::size_t kRound = 512;

std::size_t round_up(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kRound - 1) / kRound * kRound;
}

std::string describe_failure(std::size_t bytes, std::size_t rounded, MemCategory category,
                             int device, std::size_t reserved) {
  std::ostringstream m;
  m << "CUDA out of memory on device " << device << ": allocating " << bytes << " bytes ("
    << rounded << " rounded) for " << category_name(category) << " failed";
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    m << "; device free " << free_bytes << " of " << total_bytes << " bytes";
  } else {
    (void)cudaGetLastError();
  }
  m << "; allocator reserved " << reserved << " bytes (cache released)";
  const MemorySnapshot s = MemoryTracker::for_device(Device::cuda).snapshot();
  m << "; in use by category (current/peak):";
  for (std::size_t i = 0; i < kNumMemCategories; ++i) {
    m << " " << category_name(static_cast<MemCategory>(i)) << " " << s.current[i] << "/"
      << s.peak[i];
  }
  m << "; total " << s.current_total << "/" << s.peak_total << " bytes";
  return m.str();
}

class DeviceBlockCache {
 public:
  void* allocate(std::size_t bytes, MemCategory category) {
    const std::size_t rounded = round_up(bytes);
    int device = 0;
    LT_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard lock(mutex_);
    auto it = free_.find({device, rounded});
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= rounded;
      live_.emplace(p, Block{device, rounded});
      return p;
    }
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, rounded);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&p, rounded);
      if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        throw Error(describe_failure(bytes, rounded, category, device, reserved_));
      }
    }
    LT_CUDA_CHECK(status);
    reserved_ += rounded;
    live_.emplace(p, Block{device, rounded});
    return p;
  }

  void release(void* p) {
    std::lock_guard lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing to do (never happens through Storage)
    const Block block = it->second;
    live_.erase(it);
    free_[{block.device, block.bytes}].push_back(p);
    cached_ += block.bytes;
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    release_cached_locked();
  }

  std::size_t reserved() const {
    std::lock_guard lock(mutex_);
    return reserved_;
  }

  std::size_t cached() const {
    std::lock_guard lock(mutex_);
    return cached_;
  }

 private:
  struct Block {
    int device;
    std::size_t bytes;
  };

  // cudaFree synchronizes the device; blocks go back to the driver only on request or OOM.
  void release_cached_locked() {
    int current = 0;
    LT_CUDA_CHECK(cudaGetDevice(&current));
    for (auto& [key, blocks] : free_) {
      if (blocks.empty()) continue;
      LT_CUDA_CHECK(cudaSetDevice(key.first));
      for (void* p : blocks) {
        LT_CUDA_CHECK(cudaFree(p));
        reserved_ -= key.second;
        cached_ -= key.second;
      }
      blocks.clear();
    }
    LT_CUDA_CHECK(cudaSetDevice(current));
  }

  mutable std::mutex mutex_;
  std::map<std::pair<int, std::size_t>, std::vector<void*>> free_;
  std::unordered_map<void*, Block> live_;
  std::size_t reserved_ = 0;
  std::size_t cached_ = 0;
};

// Never destroyed: storages freed during static destruction (after the CUDA runtime may have
// shut down) still find it, and it never calls cudaFree at exit.
DeviceBlockCache& cache() {
  static auto* instance = new DeviceBlockCache;
  return *instance;
}

}  // namespace

void* device_allocate(std::size_t bytes, MemCategory category) {
  return cache().allocate(bytes, category);
}

void device_free(void* p) {
  cache().release(p);
}

std::size_t device_reserved_bytes() {
  return cache().reserved();
}

std::size_t device_cached_bytes() {
  return cache().cached();
}

void device_release_cached() {
  cache().release_cached();
}

}  // namespace lt::cuda
