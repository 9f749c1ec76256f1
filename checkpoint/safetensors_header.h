// The header of a safetensors file (the HuggingFace format): an 8-byte little-endian length N,
// N bytes of JSON, then the data section. The JSON maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the data section) and may
// hold "__metadata__", a map of strings. parse_safetensors_header validates everything before
// anything is exposed, so that a hostile file yields a CheckpointError and never an
// out-of-bounds read: the length against the file and a cap, the JSON, every entry's dtype,
// shape and offsets, and that the tensors tile the data section exactly (sorted by offset, each
// starting where the previous ended, the last ending at the end of the file: no overlap, no gap,
// no trailing bytes, as HuggingFace's own reader requires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/tensor_dtype.h"

namespace lt::ckpt {

// HuggingFace's reader refuses headers above 100 MB; so does this one.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
inline constexpr std::size_t kMaxTensorRank = 32;

struct TensorEntry {
  std::string name;
  TensorDtype dtype = TensorDtype::f32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section
  std::uint64_t end = 0;

  std::uint64_t bytes() const { return end - begin; }
  std::uint64_t elements() const { return bytes() / dtype_size(dtype); }
};

struct SafetensorsHeader {
  std::uint64_t data_start = 0;      // file offset of the data section: 8 + N
  std::vector<TensorEntry> tensors;  // in the order of their data
  std::map<std::string, std::string> metadata;

  // The entry called `name`, or nullptr.
  const TensorEntry* find(std::string_view name) const;

  std::map<std::string, std::size_t, std::less<>> index;  // name -> position in `tensors`
};

// N, read from the first 8 bytes of a file of `file_size` bytes and checked against the cap and
// the file size. `first_bytes` holds at least min(8, file_size) bytes. `source` names the file in
// errors.
std::uint64_t safetensors_header_length(std::span<const std::byte> first_bytes,
                                        std::uint64_t file_size, const std::string& source);

// Parses and validates the header of a file of `file_size` bytes whose first bytes are
// `file_prefix` (at least 8 + N of them). This is the reader's whole validation, from memory,
// which is what the fuzz target drives.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_prefix,
                                           std::uint64_t file_size, const std::string& source);

}  // namespace lt::ckpt
