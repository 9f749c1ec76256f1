// Timing helpers of the CUDA benchmarks (bench_cuda_*.cpp): medians of event-timed calls, device
// tensors with arbitrary finite contents, and the device line every benchmark prints first.
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "core/storage.h"
#include "core/tensor.h"

namespace lt::bench {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Median milliseconds of one call of `run` after `warmup` untimed calls; each timed call has its
// own pair of events on the default stream.
inline double median_ms(int warmup, int iters, const std::function<void()>& run) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  lt::cuda::Event start, stop;
  for (int i = 0; i < iters; ++i) {
    start.record();
    run();
    stop.record();
    stop.synchronize();
    ms.push_back(stop.elapsed_ms_since(start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A device tensor of finite, not all equal values in [-value_scale, value_scale] (speed does not
// depend on them).
inline Tensor device_random(const Shape& shape, DType dtype, double value_scale = 1.0) {
  Tensor host = Tensor::empty(shape, DType::f32, MemCategory::workspace, Device::cpu);
  float* p = host.data<float>();
  for (std::int64_t i = 0; i < host.numel(); ++i)
    p[i] = static_cast<float>(value_scale * (((i * 2654435761u) % 1000) / 500.0 - 1.0));
  Tensor out = Tensor::empty(shape, dtype, MemCategory::workspace, Device::cuda);
  copy(host, out);
  return out;
}

// "device: NAME (sm_XY), N SMs, M GiB (F GiB free)".
inline void print_device() {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, lt::cuda::current_device()), "cudaGetDeviceProperties");
  const DeviceMemoryInfo mem = device_memory_info();
  fmt::print("device: {} (sm_{}{}), {} SMs, {:.1f} GiB ({:.1f} GiB free)\n", prop.name, prop.major,
             prop.minor, prop.multiProcessorCount, static_cast<double>(mem.total_bytes) / (1 << 30),
             static_cast<double>(mem.free_bytes) / (1 << 30));
}

// main() of a CUDA benchmark: parses the flags, says "no CUDA device" and returns 0 without a
// device, prints the device line and runs; an exception prints "NAME: message" and returns 1.
template <class Parse, class Run>
int cuda_bench_main(const char* name, int argc, char** argv, Parse&& parse, Run&& run) {
  try {
    const auto args = parse(argc, argv);
    if (cuda_device_count() == 0) {
      std::puts("no CUDA device");
      return 0;
    }
    print_device();
    run(args);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace lt::bench
