// Devices, transfers, streams and events (see runtime.h).
#include "core/cuda/runtime.h"

#include <sstream>
#include <utility>

#include "core/cuda/check.h"

namespace lt::cuda {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  std::ostringstream message;
  message << file << ":" << line << ": " << call << " failed: " << cudaGetErrorName(error) << " ("
          << cudaGetErrorString(error) << ")";
  throw Error(message.str());
}

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: not an error for the caller
      n = 0;
    }
    return n;
  }();
  return count;
}

void set_device_for_local_rank(int local_rank) {
  const int n = device_count();
  LT_CHECK(n > 0, "no CUDA device visible to this process (local rank " << local_rank << ")");
  LT_CHECK(local_rank >= 0, "negative local rank " << local_rank);
  LT_CUDA_CHECK(cudaSetDevice(local_rank % n));
}

int current_device() {
  int device = 0;
  LT_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

void synchronize() {
  LT_CUDA_CHECK(cudaDeviceSynchronize());
}

MemoryInfo memory_info() {
  MemoryInfo info;
  LT_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

double peak_tflops(bool tensor) {
  const int device = current_device();
  int major = 0, minor = 0, sms = 0, clock_khz = 0;
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  // FLOPs per clock per SM, dense: A100 (sm_80) 312 bf16 / 19.5 fp32 TFLOP/s at 108 SMs x
  // 1.41 GHz; H100/H200 (sm_90) 989 / 67 at 132 SMs x 1.83 GHz.
  int per_sm = 0;
  if (major == 8 && minor == 0) per_sm = tensor ? 2048 : 128;
  if (major == 9 && minor == 0) per_sm = tensor ? 4096 : 256;
  return static_cast<double>(per_sm) * sms * clock_khz * 1e3 / 1e12;
}

void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  LT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

void zero_bytes(void* dst, std::size_t bytes) {
  if (bytes == 0) return;
  LT_CUDA_CHECK(cudaMemset(dst, 0, bytes));
}

Stream::Stream() {
  LT_CUDA_CHECK(cudaStreamCreateWithFlags(&handle_, cudaStreamNonBlocking));
}

Stream::~Stream() {
  if (handle_ != nullptr) (void)cudaStreamDestroy(handle_);
}

Stream::Stream(Stream&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) (void)cudaStreamDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Stream::synchronize() const {
  LT_CUDA_CHECK(cudaStreamSynchronize(handle_));
}

namespace {
cudaStream_t stream_of(const Stream* stream) {
  return stream == nullptr ? cudaStream_t{} : stream->handle();
}
}  // namespace

Event::Event(bool timing) {
  LT_CUDA_CHECK(
      cudaEventCreateWithFlags(&handle_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (handle_ != nullptr) (void)cudaEventDestroy(handle_);
}

Event::Event(Event&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) (void)cudaEventDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Event::record(const Stream* stream) {
  LT_CUDA_CHECK(cudaEventRecord(handle_, stream_of(stream)));
}

void Event::wait(const Stream* stream) const {
  LT_CUDA_CHECK(cudaStreamWaitEvent(stream_of(stream), handle_, 0));
}

void Event::synchronize() const {
  LT_CUDA_CHECK(cudaEventSynchronize(handle_));
}

bool Event::done() const {
  const cudaError_t status = cudaEventQuery(handle_);
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  LT_CUDA_CHECK(status);
  return true;
}

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0.0f;
  LT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle_, handle_));
  return ms;
}

}  // namespace lt::cuda
