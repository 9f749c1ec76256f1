// The CUDA runtime as the rest of longtrain sees it: devices, the caching device allocator,
// byte transfers, and RAII streams and events. Free of CUDA headers (streams and events are the
// runtime's opaque handle types, declared here), so core/ can include it from any translation
// unit; only core/cuda's implementation files include cuda_runtime.h.
//
// Every op of the CUDA backend runs on the legacy default stream, so work is ordered as it is
// issued and a freed block may go back to the cache at once. A Stream is for code that overlaps
// work explicitly (it must synchronize before freeing what its kernels use).
#pragma once

#include <cstddef>

#include "core/memory.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*
struct CUevent_st;   // cudaEvent_t is CUevent_st*

namespace lt::cuda {

// Devices visible to this process; 0 without a driver or a device (never throws).
int device_count();
// One rank per GPU: selects device local_rank % device_count() (ranks on one node are numbered
// 0..n-1 by the launcher). Throws when there is no device.
void set_device_for_local_rank(int local_rank);
int current_device();
// Waits for all work on the current device.
void synchronize();

struct MemoryInfo {
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
};
// cudaMemGetInfo on the current device.
MemoryInfo memory_info();

// Dense peak TFLOP/s of the current device at its boost clock: bf16 on tensor cores
// (tensor = true) or fp32 on CUDA cores. 0 for architectures without a figure here.
double peak_tflops(bool tensor);

// The caching device allocator behind Storage(bytes, category, Device::cuda). Blocks are
// rounded up to 512 bytes and kept per (device, size) for reuse; a miss calls cudaMalloc; when
// that fails the cache is released and the call retried once, then an lt::Error names the bytes
// requested, the category, the device's free/total memory and the tracker's snapshot. The
// tracker itself is updated by Storage, exactly as for host memory.
void* device_allocate(std::size_t bytes, MemCategory category);
void device_free(void* p);
// Bytes held from the driver on all devices (in use plus cached).
std::size_t device_reserved_bytes();
// Bytes cached (freed, not returned to the driver) on all devices.
std::size_t device_cached_bytes();
// Returns cached blocks to the driver.
void device_release_cached();

// Byte copies in any direction (cudaMemcpy, unified addressing) and zeroing of device memory, on
// the default stream: ordered after earlier work and before later work; a copy to the host has
// landed when it returns, and a host source may be reused at once.
void copy_bytes(void* dst, const void* src, std::size_t bytes);
void zero_bytes(void* dst, std::size_t bytes);

// A non-blocking stream of the current device, destroyed with the object.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  CUstream_st* handle() const { return handle_; }
  void synchronize() const;

 private:
  CUstream_st* handle_ = nullptr;
};

// An event (with timing unless disabled), destroyed with the object. `record` and `wait` take a
// stream or nullptr for the default stream.
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  CUevent_st* handle() const { return handle_; }
  void record(const Stream* stream = nullptr);
  // Makes `stream` (nullptr: the default stream) wait for this event's work.
  void wait(const Stream* stream = nullptr) const;
  void synchronize() const;
  bool done() const;
  // Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms_since(const Event& start) const;

 private:
  CUevent_st* handle_ = nullptr;
};

}  // namespace lt::cuda
