#include "checkpoint/shape.h"

namespace lt::ckpt {

std::optional<std::uint64_t> element_count(std::span<const std::uint64_t> shape) {
  std::uint64_t n = 1;
  for (const std::uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

std::optional<std::uint64_t> byte_count(std::span<const std::uint64_t> shape, TensorDtype dtype) {
  const std::optional<std::uint64_t> n = element_count(shape);
  std::uint64_t bytes = 0;
  if (!n || __builtin_mul_overflow(*n, dtype_size(dtype), &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace lt::ckpt
