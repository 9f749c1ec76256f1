#include "checkpoint/safetensors_writer.h"

#include <fmt/format.h>

#include <algorithm>

#include "checkpoint/crc32c.h"
#include "checkpoint/error.h"
#include "checkpoint/json_writer.h"
#include "checkpoint/posix_file.h"
#include "checkpoint/safetensors_header.h"
#include "checkpoint/shape.h"

namespace lt::ckpt {
namespace {

// Large enough for sequential disk bandwidth, small enough that the CRC reads the piece from
// cache right before write() copies it to the page cache.
constexpr std::uint64_t kPieceBytes = std::uint64_t{8} << 20;

// Appends to the file, keeping the running byte count and CRC32C.
class ChecksummedOutput {
 public:
  explicit ChecksummedOutput(PosixFile& file) : file_(file) {}

  void write(std::span<const std::byte> data) {
    for (std::uint64_t at = 0; at < data.size(); at += kPieceBytes) {
      const auto piece = data.subspan(at, std::min<std::uint64_t>(kPieceBytes, data.size() - at));
      written_.crc32c = crc32c(piece, written_.crc32c);
      file_.write_all(piece);
    }
    written_.bytes += data.size();
  }

  const WrittenFile& written() const { return written_; }

 private:
  PosixFile& file_;
  WrittenFile written_;
};

}  // namespace

std::uint64_t SafetensorsWriter::add_entry(std::string& name, TensorDtype dtype,
                                           const std::vector<std::uint64_t>& shape) {
  if (name.empty() || name == "__metadata__")
    throw CheckpointError(
        fmt::format("safetensors writer: tensor name {} is reserved", json_string(name)));
  if (names_.contains(name))
    throw CheckpointError(
        fmt::format("safetensors writer: tensor {} added twice", json_string(name)));
  if (shape.size() > kMaxTensorRank)
    throw CheckpointError(fmt::format("safetensors writer: tensor {} has {} dimensions, at most {}",
                                      json_string(name), shape.size(), kMaxTensorRank));
  const std::optional<std::uint64_t> bytes = byte_count(shape, dtype);
  if (!bytes)
    throw CheckpointError(
        fmt::format("safetensors writer: tensor {} has more than 2^64 bytes", json_string(name)));
  names_.insert(name);
  return *bytes;
}

void SafetensorsWriter::add(std::string name, TensorDtype dtype, std::vector<std::uint64_t> shape,
                            std::span<const std::byte> data) {
  const std::uint64_t bytes = add_entry(name, dtype, shape);
  if (data.size() != bytes) {
    names_.erase(name);
    throw CheckpointError(fmt::format(
        "safetensors writer: tensor {} of shape [{}] and dtype {} needs {} bytes, got {}",
        json_string(name), fmt::join(shape, ", "), dtype_name(dtype), bytes, data.size()));
  }
  tensors_.push_back({std::move(name), dtype, std::move(shape), bytes, data, {}});
}

void SafetensorsWriter::add(std::string name, TensorDtype dtype, std::vector<std::uint64_t> shape,
                            Producer produce) {
  const std::uint64_t bytes = add_entry(name, dtype, shape);
  tensors_.push_back({std::move(name), dtype, std::move(shape), bytes, {}, std::move(produce)});
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_.insert_or_assign(std::move(key), std::move(value));
}

std::string SafetensorsWriter::header_bytes() const {
  std::vector<std::string> members;
  if (!metadata_.empty()) {
    std::vector<std::string> pairs;
    for (const auto& [k, v] : metadata_) pairs.push_back(json_string(k) + ":" + json_string(v));
    members.push_back(fmt::format("\"__metadata__\":{{{}}}", fmt::join(pairs, ",")));
  }
  std::uint64_t offset = 0;
  for (const Pending& t : tensors_) {
    members.push_back(fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
                                  json_string(t.name), dtype_name(t.dtype),
                                  json_uint_array(t.shape), offset, offset + t.bytes));
    offset += t.bytes;
  }
  std::string json = fmt::format("{{{}}}", fmt::join(members, ","));
  json.append((8 - json.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  if (json.size() > kMaxSafetensorsHeaderBytes)
    throw CheckpointError(
        fmt::format("safetensors writer: the header needs {} bytes, more than "
                    "readers accept ({})",
                    json.size(), kMaxSafetensorsHeaderBytes));
  std::string out(8, '\0');
  for (std::size_t i = 0; i < 8; ++i)
    out[i] = static_cast<char>((static_cast<std::uint64_t>(json.size()) >> (8 * i)) & 0xFF);
  return out + json;
}

WrittenFile SafetensorsWriter::write(const std::filesystem::path& path) const {
  const std::string header = header_bytes();
  PosixFile file(path, PosixFile::Mode::write);
  ChecksummedOutput out(file);
  out.write(std::as_bytes(std::span(header.data(), header.size())));
  std::vector<std::byte> staging;  // allocated for the first producer
  for (const Pending& t : tensors_) {
    if (!t.produce) {
      out.write(t.data);
      continue;
    }
    if (staging.empty()) staging.resize(kPieceBytes);
    for (std::uint64_t at = 0; at < t.bytes; at += staging.size()) {
      const auto piece = std::span(staging).first(
          static_cast<std::size_t>(std::min<std::uint64_t>(staging.size(), t.bytes - at)));
      t.produce(at, piece);
      out.write(piece);
    }
  }
  file.sync();
  file.close();
  return out.written();
}

}  // namespace lt::ckpt
