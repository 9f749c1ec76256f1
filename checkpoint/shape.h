// Sizes of tensor shapes in 64-bit arithmetic that cannot wrap: a shape read from a file may
// claim any dimensions, and an overflowed product would let a bad entry pass a size check.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "checkpoint/tensor_dtype.h"

namespace lt::ckpt {

// The product of the dimensions (1 for a scalar), or nothing when it exceeds 2^64 - 1.
std::optional<std::uint64_t> element_count(std::span<const std::uint64_t> shape);
// element_count × dtype_size, or nothing when it exceeds 2^64 - 1.
std::optional<std::uint64_t> byte_count(std::span<const std::uint64_t> shape, TensorDtype dtype);

}  // namespace lt::ckpt
