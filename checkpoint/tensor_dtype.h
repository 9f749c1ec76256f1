// The element types a safetensors file (and so a checkpoint) can hold, under the names of the
// HuggingFace format. Only types of whole bytes are listed; a file using another one is refused
// as "unknown dtype".
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace lt::ckpt {

enum class TensorDtype {
  boolean,
  u8,
  i8,
  f8_e5m2,
  f8_e4m3,
  i16,
  u16,
  f16,
  bf16,
  i32,
  u32,
  f32,
  i64,
  u64,
  f64
};

// "F32", "BF16", ... as written in safetensors headers and manifests.
std::string_view dtype_name(TensorDtype dtype);
std::optional<TensorDtype> dtype_from_name(std::string_view name);
std::size_t dtype_size(TensorDtype dtype);

// Every dtype, for messages listing what is accepted and for tests.
std::span<const TensorDtype> all_dtypes();

}  // namespace lt::ckpt
