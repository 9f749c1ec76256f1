// Reads tensors from a safetensors file. The constructor validates the whole header (see
// safetensors_header.h) before anything can be read; reads then go through pread, so one reader
// serves several threads, and a sub-range of a tensor can be read without the rest (resharding
// reads only the slice a rank needs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "checkpoint/posix_file.h"
#include "checkpoint/safetensors_header.h"

namespace lt::ckpt {

class SafetensorsReader {
 public:
  // Throws CheckpointError naming the file and the problem.
  explicit SafetensorsReader(std::filesystem::path path);

  const std::filesystem::path& path() const { return file_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  // The entry `name`; missing is an error naming the file and the tensor.
  const TensorEntry& entry(std::string_view name) const;

  // All of tensor `name`'s bytes: out.size() must be its byte count.
  void read(std::string_view name, std::span<std::byte> out) const;
  // out.size() bytes of tensor `name`, from byte `byte_offset` of the tensor.
  void read(std::string_view name, std::uint64_t byte_offset, std::span<std::byte> out) const;

 private:
  PosixFile file_;
  SafetensorsHeader header_;
};

}  // namespace lt::ckpt
