// Writes a safetensors file (the HuggingFace format, readable by its `safetensors` library)
// without ever holding the file in memory: the header is built from the tensors' shapes, then
// each tensor's bytes are written straight from the caller's memory, or from a producer that
// fills a staging buffer piece by piece (for data that must be converted or gathered on the
// way), in large sequential writes. The CRC32C the manifest needs is computed on the way, so
// the file is never read back; write() ends with fsync.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/tensor_dtype.h"

namespace lt::ckpt {

struct WrittenFile {
  std::uint64_t bytes = 0;
  std::uint32_t crc32c = 0;
};

class SafetensorsWriter {
 public:
  // Fills `out` with the tensor's bytes [byte_offset, byte_offset + out.size()).
  using Producer = std::function<void(std::uint64_t byte_offset, std::span<std::byte> out)>;

  // Adds a tensor whose bytes are `data`, which must stay valid until write() returns. Throws
  // CheckpointError for an empty, reserved or repeated name, or when data.size() is not the
  // byte count of `shape` in `dtype`.
  void add(std::string name, TensorDtype dtype, std::vector<std::uint64_t> shape,
           std::span<const std::byte> data);
  // Adds a tensor whose bytes `produce` supplies during write(), in order, in pieces.
  void add(std::string name, TensorDtype dtype, std::vector<std::uint64_t> shape, Producer produce);
  void set_metadata(std::string key, std::string value);

  // The 8-byte length and the JSON header, padded with spaces to a multiple of 8.
  std::string header_bytes() const;
  // Creates or truncates `path`, writes the file and fsyncs it. Throws CheckpointError naming
  // the path and the failed call.
  WrittenFile write(const std::filesystem::path& path) const;

 private:
  struct Pending {
    std::string name;
    TensorDtype dtype;
    std::vector<std::uint64_t> shape;
    std::uint64_t bytes;
    std::span<const std::byte> data;  // when produce is empty
    Producer produce;
  };
  std::uint64_t add_entry(std::string& name, TensorDtype dtype,
                          const std::vector<std::uint64_t>& shape);

  std::vector<Pending> tensors_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lt::ckpt
