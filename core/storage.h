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

// Whether this build has the CUDA backend (the toolkit was found at build time).
bool cuda_backend_built();
// CUDA devices visible to this process: 0 in a build without the CUDA backend, or without a
// driver or a device.
int cuda_device_count();
// Bytes the device caching allocator holds on all devices (in use plus cached); 0 without CUDA.
std::size_t device_reserved_bytes();
// Returns cached, unused device blocks to the driver.
void device_release_cached();
// cudaMemGetInfo of the current device, for reports beside the tracker's figures ({0, 0} without
// CUDA).
struct DeviceMemoryInfo {
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
};
DeviceMemoryInfo device_memory_info();
// Dense peak TFLOP/s of the current CUDA device for bf16 tensor-core math (bf16 = true) or fp32;
// 0 without CUDA or for an architecture with no figure (core/cuda/runtime.h).
double device_peak_tflops(bool bf16);

// Byte copies between memory of any two devices. A copy to the host has landed when it returns;
// copies to a device are ordered before any later op (the source may be reused at once).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);
void zero_bytes(void* dst, Device device, std::size_t bytes);

}  // namespace lt
