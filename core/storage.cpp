#include "core/storage.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef LT_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

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

[[noreturn, maybe_unused]] void no_backend(Device device) {
  throw std::runtime_error("this build has no " + std::string(device_name(device)) + " backend");
}

}  // namespace

Storage::Storage(std::size_t bytes, MemCategory category, Device device)
    : bytes_(bytes), category_(category), device_(device) {
  if (device == Device::cpu) {
    data_ = host_cache().allocate(round_up(bytes));
  } else {
#ifdef LT_HAVE_CUDA
    data_ = cuda::device_allocate(bytes, category);
#else
    no_backend(device);
#endif
  }
  MemoryTracker::for_device(device_).on_alloc(category_, static_cast<std::int64_t>(bytes_));
}

Storage::~Storage() {
  if (device_ == Device::cpu) {
    host_cache().release(data_, round_up(bytes_));
  } else {
#ifdef LT_HAVE_CUDA
    cuda::device_free(data_);
#endif
  }
  MemoryTracker::for_device(device_).on_free(category_, static_cast<std::int64_t>(bytes_));
}

std::size_t host_reserved_bytes() {
  return host_cache().reserved();
}
void host_release_cached() {
  host_cache().release_cached();
}

bool cuda_backend_built() {
#ifdef LT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

#ifdef LT_HAVE_CUDA
int cuda_device_count() {
  return cuda::device_count();
}
std::size_t device_reserved_bytes() {
  return cuda::device_reserved_bytes();
}
void device_release_cached() {
  cuda::device_release_cached();
}
DeviceMemoryInfo device_memory_info() {
  const cuda::MemoryInfo info = cuda::memory_info();
  return {info.free_bytes, info.total_bytes};
}
double device_peak_tflops(bool bf16) {
  return cuda::device_count() > 0 ? cuda::peak_tflops(bf16) : 0.0;
}
#else
int cuda_device_count() {
  return 0;
}
std::size_t device_reserved_bytes() {
  return 0;
}
void device_release_cached() {}
DeviceMemoryInfo device_memory_info() {
  return {};
}
double device_peak_tflops(bool) {
  return 0.0;
}
#endif

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef LT_HAVE_CUDA
  cuda::copy_bytes(dst, src, bytes);
#else
  no_backend(dst_device == Device::cpu ? src_device : dst_device);
#endif
}

void zero_bytes(void* dst, Device device, std::size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    std::memset(dst, 0, bytes);
    return;
  }
#ifdef LT_HAVE_CUDA
  cuda::zero_bytes(dst, bytes);
#else
  no_backend(device);
#endif
}

}  // namespace lt
