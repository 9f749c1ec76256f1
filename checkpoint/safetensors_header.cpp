#include "checkpoint/safetensors_header.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>

#include "checkpoint/error.h"
#include "checkpoint/json_reader.h"
#include "checkpoint/json_writer.h"
#include "checkpoint/shape.h"

namespace lt::ckpt {
namespace {

constexpr std::uint64_t kLengthBytes = 8;

std::string known_dtypes() {
  std::vector<std::string_view> names;
  for (TensorDtype d : all_dtypes()) names.push_back(dtype_name(d));
  return fmt::format("{}", fmt::join(names, ", "));
}

TensorDtype parse_dtype(const JsonValue& v) {
  const std::string name = v.string(64);
  const auto dtype = dtype_from_name(name);
  if (!dtype)
    v.fail(fmt::format("unknown dtype {}; expected one of {}", json_string(name), known_dtypes()));
  return *dtype;
}

std::vector<std::uint64_t> parse_shape(const JsonValue& v) {
  std::vector<std::uint64_t> shape;
  for (const JsonValue& d : v.items(kMaxTensorRank)) shape.push_back(d.uint64());
  return shape;
}

TensorEntry parse_entry(const std::string& name, const JsonValue& v, std::uint64_t data_bytes) {
  v.expect_keys({"dtype", "shape", "data_offsets"});
  TensorEntry e{name, parse_dtype(v.at("dtype")), parse_shape(v.at("shape")), 0, 0};
  const JsonValue offsets = v.at("data_offsets");
  const std::vector<JsonValue> pair = offsets.items(2);
  if (pair.size() != 2) offsets.fail("expected [begin, end]");
  e.begin = pair[0].uint64();
  e.end = pair[1].uint64();
  if (e.begin > e.end) offsets.fail(fmt::format("begin {} is after end {}", e.begin, e.end));
  if (e.end > data_bytes)
    offsets.fail(fmt::format("[{}, {}] runs past the data section of {} bytes (truncated file?)",
                             e.begin, e.end, data_bytes));
  const auto need = byte_count(e.shape, e.dtype);
  if (!need || *need != e.bytes())
    offsets.fail(fmt::format("[{}, {}] holds {} bytes but shape [{}] of {} needs {}", e.begin,
                             e.end, e.bytes(), fmt::join(e.shape, ", "), dtype_name(e.dtype),
                             need ? fmt::format("{}", *need) : std::string("more than 2^64")));
  return e;
}

std::map<std::string, std::string> parse_metadata(const JsonValue& v) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.members()) out.emplace(key, value.string(SIZE_MAX));
  return out;
}

// Sorted by offset, the tensors must cover [0, data_bytes) exactly once.
void check_tiling(std::vector<TensorEntry>& tensors, std::uint64_t data_bytes,
                  const std::string& source) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& e : tensors) {
    if (e.begin < covered)
      throw CheckpointError(
          fmt::format("{}: tensor {}: data_offsets [{}, {}] overlap tensor {} [{}, {}]", source,
                      json_string(e.name), e.begin, e.end, json_string(previous->name),
                      previous->begin, previous->end));
    if (e.begin > covered)
      throw CheckpointError(
          fmt::format("{}: bytes [{}, {}) of the data section belong to no tensor (next is {})",
                      source, covered, e.begin, json_string(e.name)));
    covered = e.end;
    previous = &e;
  }
  if (covered != data_bytes)
    throw CheckpointError(fmt::format(
        "{}: the data section holds {} bytes but the tensors end at byte {} (trailing bytes)",
        source, data_bytes, covered));
}

}  // namespace

const TensorEntry* SafetensorsHeader::find(std::string_view name) const {
  const auto it = index.find(name);
  return it == index.end() ? nullptr : &tensors[it->second];
}

std::uint64_t safetensors_header_length(std::span<const std::byte> first_bytes,
                                        std::uint64_t file_size, const std::string& source) {
  if (file_size < kLengthBytes)
    throw CheckpointError(
        fmt::format("{}: {} bytes, too short for the 8-byte header length (truncated file?)",
                    source, file_size));
  if (first_bytes.size() < kLengthBytes)
    throw CheckpointError(
        fmt::format("{}: needs the first 8 bytes to read the header length", source));
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < kLengthBytes; ++i)
    n |= std::to_integer<std::uint64_t>(first_bytes[i]) << (8 * i);
  if (n > kMaxSafetensorsHeaderBytes)
    throw CheckpointError(fmt::format("{}: header length {} exceeds the limit of {} bytes", source,
                                      n, kMaxSafetensorsHeaderBytes));
  if (n > file_size - kLengthBytes)
    throw CheckpointError(fmt::format(
        "{}: header length {} runs past the end of the file ({} bytes; truncated file?)", source, n,
        file_size));
  return n;
}

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_prefix,
                                           std::uint64_t file_size, const std::string& source) {
  const std::uint64_t n = safetensors_header_length(file_prefix, file_size, source);
  if (file_prefix.size() < kLengthBytes + n)
    throw CheckpointError(fmt::format("{}: needs the first {} bytes to read the header, got {}",
                                      source, kLengthBytes + n, file_prefix.size()));
  const auto* text = reinterpret_cast<const char*>(file_prefix.data() + kLengthBytes);
  const JsonValue root = JsonValue::parse(std::string_view(text, n), source + ": header");
  const std::uint64_t data_bytes = file_size - kLengthBytes - n;

  SafetensorsHeader header;
  header.data_start = kLengthBytes + n;
  for (const auto& [name, value] : root.members()) {
    if (name == "__metadata__")
      header.metadata = parse_metadata(value);
    else
      header.tensors.push_back(parse_entry(name, value, data_bytes));
  }
  check_tiling(header.tensors, data_bytes, source);
  for (std::size_t i = 0; i < header.tensors.size(); ++i)
    header.index.emplace(header.tensors[i].name, i);
  return header;
}

}  // namespace lt::ckpt
