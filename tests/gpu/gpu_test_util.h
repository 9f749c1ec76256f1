// Helpers for the CUDA tests (tests/gpu): skip without a device, random tensors on any device,
// and comparisons that bring both tensors to the host in f64.
//
// Every GPU test starts with LT_REQUIRE_CUDA(): without a CUDA device the test is reported as
// skipped (ctest: SKIP_REGULAR_EXPRESSION on gtest's "[  SKIPPED ]"), never as passed.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "tests/test_util.h"

namespace lt::test {

inline bool cuda_device_present() {
  return cuda_device_count() > 0;
}

// A tensor of `dtype` on `device` holding N(0, 1) * scale values from (seed, "random_tensor"):
// the same values on every device, so a cpu and a cuda tensor from one seed are equal.
inline Tensor random_tensor(const Shape& shape, DType dtype, std::uint64_t seed,
                            Device device = Device::cuda, double scale = 1.0,
                            MemCategory category = MemCategory::workspace) {
  Tensor host = random_tensor(shape, dtype, seed, "random_tensor", scale, category);
  return device == Device::cpu ? host : to_device(host, device);
}

// All elements of `t` (any device, any floating dtype, strided views ok) as doubles.
inline std::vector<double> to_host_f64(const Tensor& t) {
  const Tensor out = to_f64(t);
  return std::vector<double>(out.data<double>(), out.data<double>() + out.numel());
}

// max |a - b| / max |b| over all elements: the error relative to the reference b's scale (the
// largest absolute difference when b is all zeros). Tensors may live on different devices.
inline double max_rel_error(const Tensor& actual, const Tensor& expected) {
  const std::vector<double> a = to_host_f64(actual), b = to_host_f64(expected);
  EXPECT_EQ(a.size(), b.size()) << "max_rel_error of " << actual.describe() << " and "
                                << expected.describe();
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::abs(a[i] - b[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale == 0.0 ? diff : diff / scale;
}

inline Tensor on_cuda(const Tensor& host) {
  return to_device(host, Device::cuda);
}

inline Tensor empty_on(const Shape& shape, DType dtype, Device device) {
  return Tensor::empty(shape, dtype, MemCategory::workspace, device);
}

inline DType stat_of(DType d) {
  return d == DType::f64 ? DType::f64 : DType::f32;
}

// LSE comparison: -inf must match exactly, finite values within the returned
// |gpu - cpu| / max(1, |cpu|).
inline double lse_error(const Tensor& gpu, const Tensor& cpu) {
  const std::vector<double> a = to_host_f64(gpu), b = to_host_f64(cpu);
  EXPECT_EQ(a.size(), b.size());
  double err = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    const double d = std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i]));
    err = std::isnan(d) ? INFINITY : std::max(err, d);
  }
  return err;
}

}  // namespace lt::test

// Skips the current test (GTEST_SKIP) when no CUDA device is visible.
#define LT_REQUIRE_CUDA()                                                     \
  do {                                                                        \
    if (!::lt::test::cuda_device_present()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)
