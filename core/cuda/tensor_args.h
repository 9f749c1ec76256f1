// What the host wrappers of the CUDA ops (base_ops.cpp, and the model ops' wrappers) need from a
// Tensor to call a raw launcher: its launcher dtype, and device scratch from the tracked
// allocator. Host C++20 only (nvcc never includes it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/cuda/model_launch.h"
#include "core/error.h"
#include "core/tensor.h"

namespace lt::cuda {

// The launchers' dtype of a floating tensor (f32, bf16, f64); anything else is refused.
inline launch::Dt launch_dt(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32:
      return launch::Dt::f32;
    case DType::bf16:
      return launch::Dt::bf16;
    case DType::f64:
      return launch::Dt::f64;
    default:
      throw Error("floating dtype expected, got " + std::string(dtype_name(t.dtype())));
  }
}

// n elements (at least one) of device workspace, counted in the cuda tracker.
inline Tensor device_scratch(std::int64_t n, DType dtype) {
  return Tensor::empty(Shape{std::max<std::int64_t>(n, 1)}, dtype, MemCategory::workspace,
                       Device::cuda);
}

}  // namespace lt::cuda
