// Helpers shared by the CPU kernels: dtype dispatch, element access, deterministic parallel loops
// and a vectorizable exp.
#pragma once

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace lt::cpu {

// Per-row statistics (RMSNorm rstd, attention LSE) are f32, or f64 in f64 reference runs.
template <class T>
using stat_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Calls f.template operator()<T>() with T the C++ type of a floating dtype.
template <class F>
void dispatch_float(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32:
      f.template operator()<float>();
      return;
    case DType::bf16:
      f.template operator()<bf16>();
      return;
    case DType::f64:
      f.template operator()<double>();
      return;
    default:
      throw Error("floating dtype expected, got " + std::string(dtype_name(dtype)));
  }
}

template <class T>
inline compute_t<T> load(const T* p, std::int64_t i) {
  if constexpr (std::is_same_v<T, bf16>) {
    return std::bit_cast<float>(std::uint32_t{p[i].bits} << 16);
  } else {
    return p[i];
  }
}

template <class T>
inline void store(T* p, std::int64_t i, compute_t<T> v) {
  if constexpr (std::is_same_v<T, bf16>) {
    p[i].bits = bf16::round_from_float(v);
  } else {
    p[i] = v;
  }
}

// Runs body(begin, end) over [0, n) split into contiguous ranges, one per thread. Each index is
// handled by exactly one call, so results never depend on how the range was split.
template <class Body>
void parallel_ranges(std::int64_t n, std::int64_t min_per_thread, Body&& body) {
  const std::int64_t max_threads =
      std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, min_per_thread));
  const int threads = static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), max_threads));
  if (threads <= 1 || omp_in_parallel()) {
    body(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t nt = omp_get_num_threads();
    const std::int64_t begin = n * t / nt;
    const std::int64_t end = n * (t + 1) / nt;
    if (begin < end) body(begin, end);
  }
}

// Runs body(i) for each task i in [0, n) with dynamic scheduling (tasks are independent).
template <class Body>
void parallel_tasks(std::int64_t n, Body&& body) {
  if (n <= 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

// exp(x) for float with ~2 ulp error, written so loops over it vectorize; exp(-inf) = 0.
inline float exp_approx(float x) {
  const float clamped = std::min(std::max(x, -87.0f), 88.0f);
  const float log2e = 1.44269504088896341f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (clamped * log2e + shifter) - shifter;
  const float r = (clamped - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  const float result = p * std::bit_cast<float>(bits);
  return x < -87.0f ? 0.0f : result;
}

inline double exp_approx(double x) {
  return std::exp(x);
}

template <class T>
const T* typed(const Tensor& t) {
  return t.data<T>();
}

}  // namespace lt::cpu
