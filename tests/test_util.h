// Helpers shared by the tests: deterministic random tensors and finite-difference checks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace lt::test {

// A host tensor of `dtype` filled with scale * N(0, 1) values from (seed, name). Host memory
// whatever the default device: the values are written through host pointers.
inline Tensor random_tensor(const Shape& shape, DType dtype, std::uint64_t seed,
                            const std::string& name, double scale = 1.0,
                            MemCategory category = MemCategory::workspace) {
  Tensor staging = Tensor::empty(shape, DType::f64, MemCategory::workspace, Device::cpu);
  double* p = staging.data<double>();
  const std::uint64_t key = rng_key(seed, name);
  for (std::int64_t i = 0; i < staging.numel(); ++i)
    p[i] = scale * normal_at(key, static_cast<std::uint64_t>(i));
  if (dtype == DType::f64) return staging;
  Tensor t = Tensor::empty(shape, dtype, category, Device::cpu);
  copy(staging, t);
  return t;
}

// A host f64 copy of `t` (any device).
inline Tensor to_f64(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::f64, MemCategory::workspace, Device::cpu);
  copy(t, out);
  return out;
}

// max |a - b| / max |b| over all elements (relative to the reference b's scale).
inline double relative_error(const Tensor& a, const Tensor& b) {
  const Tensor x = to_f64(a), y = to_f64(b);
  double diff = 0.0, scale = 0.0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    diff = std::max(diff, std::abs(x.data<double>()[i] - y.data<double>()[i]));
    scale = std::max(scale, std::abs(y.data<double>()[i]));
  }
  return scale == 0.0 ? diff : diff / scale;
}

// Compares an analytic gradient of a scalar loss with central differences, element by element
// on up to `samples` evenly spread elements of `param` (an f64 tensor perturbed in place).
// Each element must agree within atol + rtol * |fd|.
inline void expect_gradient_matches(const std::string& what, const std::function<double()>& loss,
                                    const Tensor& param, const Tensor& analytic, int samples = 24,
                                    double eps = 1e-6, double rtol = 1e-5, double atol = 1e-8) {
  ASSERT_EQ(param.dtype(), DType::f64) << what;
  ASSERT_EQ(param.numel(), analytic.numel()) << what;
  const Tensor grad = to_f64(analytic);
  const std::int64_t n = param.numel();
  const std::int64_t step = std::max<std::int64_t>(1, n / samples);
  double* p = param.data<double>();
  double max_abs_grad = 0.0;
  for (std::int64_t i = 0; i < n; i += step) {
    const double saved = p[i];
    p[i] = saved + eps;
    const double up = loss();
    p[i] = saved - eps;
    const double down = loss();
    p[i] = saved;
    const double fd = (up - down) / (2 * eps);
    const double an = grad.data<double>()[i];
    max_abs_grad = std::max(max_abs_grad, std::abs(fd));
    EXPECT_NEAR(an, fd, atol + rtol * std::abs(fd)) << what << " element " << i;
  }
  EXPECT_GT(max_abs_grad, 0.0) << what << ": every sampled gradient is zero, the check is vacuous";
}

// sum(out * weights) in double: a scalar loss whose gradient with respect to out is `weights`.
inline double dot(const Tensor& out, const Tensor& weights) {
  const Tensor a = to_f64(out), b = to_f64(weights);
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
  return s;
}

}  // namespace lt::test
