#include "checkpoint/safetensors_reader.h"

#include <fmt/format.h>

#include <array>
#include <vector>

#include "checkpoint/error.h"
#include "checkpoint/json_writer.h"

namespace lt::ckpt {
namespace {

SafetensorsHeader read_header(const PosixFile& file) {
  const std::string source = file.path().string();
  const std::uint64_t size = file.size();
  std::array<std::byte, 8> length_bytes{};
  const std::size_t have = size < 8 ? static_cast<std::size_t>(size) : length_bytes.size();
  file.read_at(0, std::span(length_bytes).first(have));
  const std::uint64_t n =
      safetensors_header_length(std::span(length_bytes).first(have), size, source);
  // n is capped at 100 MB and within the file, so this allocation is bounded.
  std::vector<std::byte> prefix(8 + n);
  file.read_at(0, prefix);
  return parse_safetensors_header(prefix, size, source);
}

}  // namespace

SafetensorsReader::SafetensorsReader(std::filesystem::path path)
    : file_(std::move(path), PosixFile::Mode::read), header_(read_header(file_)) {}

const TensorEntry& SafetensorsReader::entry(std::string_view name) const {
  const TensorEntry* e = header_.find(name);
  if (!e)
    throw CheckpointError(
        fmt::format("{}: no tensor {} in the file", path().string(), json_string(name)));
  return *e;
}

void SafetensorsReader::read(std::string_view name, std::span<std::byte> out) const {
  const TensorEntry& e = entry(name);
  if (out.size() != e.bytes())
    throw CheckpointError(fmt::format("{}: tensor {} has {} bytes, the buffer {}", path().string(),
                                      json_string(name), e.bytes(), out.size()));
  read(name, 0, out);
}

void SafetensorsReader::read(std::string_view name, std::uint64_t byte_offset,
                             std::span<std::byte> out) const {
  const TensorEntry& e = entry(name);
  if (byte_offset > e.bytes() || out.size() > e.bytes() - byte_offset)
    throw CheckpointError(fmt::format("{}: bytes [{}, {}) are outside tensor {} of {} bytes",
                                      path().string(), byte_offset, byte_offset + out.size(),
                                      json_string(name), e.bytes()));
  file_.read_at(header_.data_start + e.begin + byte_offset, out);
}

}  // namespace lt::ckpt
