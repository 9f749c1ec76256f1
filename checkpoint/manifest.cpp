#include "checkpoint/manifest.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "checkpoint/crc32c.h"
#include "checkpoint/error.h"
#include "checkpoint/json_writer.h"
#include "checkpoint/safetensors_header.h"
#include "checkpoint/shape.h"

namespace lt::ckpt {
namespace {

// Throws for `source`, naming the key path.
[[noreturn]] void fail(const std::string& source, const std::string& key, std::string_view what) {
  throw CheckpointError(fmt::format("{}: {}: {}", source, key, what));
}

void validate_layout(const Layout& l, const std::string& source) {
  for (const auto& [key, value] :
       {std::pair{"layout.tp", l.tp}, {"layout.cp", l.cp}, {"layout.dp", l.dp}})
    if (value < 1) fail(source, key, fmt::format("expected at least 1, found {}", value));
  if (l.zero_stage < 0 || l.zero_stage > 3)
    fail(source, "layout.zero_stage", fmt::format("expected 0 to 3, found {}", l.zero_stage));
  std::int64_t world = 0;
  if (__builtin_mul_overflow(l.tp, l.cp, &world) || __builtin_mul_overflow(world, l.dp, &world) ||
      world != l.world_size)
    fail(source, "layout.world_size",
         fmt::format("expected tp·cp·dp = {}·{}·{}, found {}", l.tp, l.cp, l.dp, l.world_size));
}

// Returns the listed names.
std::set<std::string_view> validate_files(const std::vector<FileRecord>& files,
                                          const std::string& source) {
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string key = fmt::format("files[{}].name", i);
    if (!is_valid_file_name(files[i].name))
      fail(source, key,
           fmt::format("{} is not a plain file name (1 to 255 of A-Z a-z 0-9 . _ -, no leading "
                       "'.')",
                       json_string(files[i].name)));
    if (!seen.insert(files[i].name).second)
      fail(source, key, fmt::format("{} is listed twice", json_string(files[i].name)));
  }
  return seen;
}

void validate_shard(const ShardRecord& s, const TensorRecord& t,
                    const std::set<std::string_view>& files, const std::string& source,
                    const std::string& key) {
  if (!files.contains(s.file))
    fail(source, key + ".file", fmt::format("{} is not in files", json_string(s.file)));
  if (s.key.empty()) fail(source, key + ".key", "expected a tensor name, found an empty string");
  const std::size_t rank = t.global_shape.size();
  if (s.offsets.size() != rank || s.shape.size() != rank)
    fail(source, key,
         fmt::format("offsets [{}] and shape [{}] must have the {} dimensions of global_shape",
                     fmt::join(s.offsets, ", "), fmt::join(s.shape, ", "), rank));
  for (std::size_t d = 0; d < rank; ++d) {
    std::uint64_t end = 0;
    if (__builtin_add_overflow(s.offsets[d], s.shape[d], &end) || end > t.global_shape[d])
      fail(source, key,
           fmt::format("dimension {}: offset {} + size {} exceeds the global size {}", d,
                       s.offsets[d], s.shape[d], t.global_shape[d]));
  }
  if (s.elements) {
    // A slice of more than 2^64 elements bounds no range.
    const std::uint64_t n = element_count(s.shape).value_or(UINT64_MAX);
    if (s.elements->begin > s.elements->end || s.elements->end > n)
      fail(source, key + ".elements",
           fmt::format("[{}, {}] is not a range within the slice's {} elements", s.elements->begin,
                       s.elements->end, n));
  }
}

void validate_tensors(const std::vector<TensorRecord>& tensors,
                      const std::set<std::string_view>& files, const std::string& source) {
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorRecord& t = tensors[i];
    const std::string key = fmt::format("tensors[{}] ({})", i, json_string(t.name));
    if (t.name.empty()) fail(source, key + ".name", "expected a name, found an empty string");
    if (!seen.insert(t.name).second) fail(source, key + ".name", "listed twice");
    if (t.global_shape.size() > kMaxTensorRank)
      fail(source, key + ".global_shape",
           fmt::format("{} dimensions, at most {}", t.global_shape.size(), kMaxTensorRank));
    if (t.shards.empty()) fail(source, key + ".shards", "expected at least one shard");
    for (std::size_t j = 0; j < t.shards.size(); ++j)
      validate_shard(t.shards[j], t, files, source, fmt::format("{}.shards[{}]", key, j));
  }
}

std::string layout_json(const Layout& l) {
  return fmt::format(
      "{{\"tp\": {}, \"cp\": {}, \"dp\": {}, \"zero_stage\": {}, \"world_size\": {}}}", l.tp, l.cp,
      l.dp, l.zero_stage, l.world_size);
}

std::string lr_schedule_json(const std::map<std::string, double>& values) {
  std::vector<std::string> members;
  for (const auto& [k, v] : values)
    members.push_back(json_string(k) + ": " + json_double(v, "manifest lr_schedule." + k));
  return fmt::format("{{{}}}", fmt::join(members, ", "));
}

std::string rng_json(const std::map<std::string, std::vector<std::uint64_t>>& states) {
  std::vector<std::string> members;
  for (const auto& [k, v] : states) members.push_back(json_string(k) + ": " + json_uint_array(v));
  return fmt::format("{{{}}}", fmt::join(members, ", "));
}

std::string file_json(const FileRecord& f) {
  return fmt::format("{{\"name\": {}, \"bytes\": {}, \"crc32c\": {}}}", json_string(f.name),
                     f.bytes, f.crc32c);
}

std::string shard_json(const ShardRecord& s) {
  std::string out = fmt::format("{{\"file\": {}, \"key\": {}, \"offsets\": {}, \"shape\": {}",
                                json_string(s.file), json_string(s.key), json_uint_array(s.offsets),
                                json_uint_array(s.shape));
  if (s.elements) out += fmt::format(", \"elements\": [{},{}]", s.elements->begin, s.elements->end);
  return out + "}";
}

std::string tensor_json(const TensorRecord& t) {
  std::vector<std::string> shards;
  for (const ShardRecord& s : t.shards) shards.push_back(shard_json(s));
  return fmt::format("{{\"name\": {}, \"dtype\": \"{}\", \"global_shape\": {}, \"shards\": [{}]}}",
                     json_string(t.name), dtype_name(t.dtype), json_uint_array(t.global_shape),
                     fmt::join(shards, ", "));
}

// "[\n    a,\n    b\n  ]": one element a line, so that manifests diff well.
template <typename T, typename F>
std::string json_lines(const std::vector<T>& items, F to_json) {
  if (items.empty()) return "[]";
  std::vector<std::string> lines;
  for (const T& item : items) lines.push_back(to_json(item));
  return fmt::format("[\n    {}\n  ]", fmt::join(lines, ",\n    "));
}

}  // namespace

const FileRecord* Manifest::find_file(std::string_view name) const {
  const auto it =
      std::find_if(files.begin(), files.end(), [&](const FileRecord& f) { return f.name == name; });
  return it == files.end() ? nullptr : &*it;
}

const TensorRecord* Manifest::find_tensor(std::string_view name) const {
  const auto it = std::find_if(tensors.begin(), tensors.end(),
                               [&](const TensorRecord& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

bool is_valid_file_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void validate_manifest(const Manifest& m, const std::string& source) {
  if (m.format_version < kOldestManifestVersion || m.format_version > kManifestVersion)
    fail(source, "format_version", unsupported_version(m.format_version));
  if (m.step < 0) fail(source, "step", fmt::format("expected at least 0, found {}", m.step));
  validate_layout(m.layout, source);
  for (const auto& [k, v] : m.lr_schedule)
    if (!std::isfinite(v)) fail(source, "lr_schedule." + k, "expected a finite number");
  validate_tensors(m.tensors, validate_files(m.files, source), source);
}

std::string unsupported_version(std::int64_t version) {
  return fmt::format("version {}, but this build reads versions {} to {}", version,
                     kOldestManifestVersion, kManifestVersion);
}

std::uint32_t manifest_text_crc32c(std::string_view text) {
  return crc32c(std::as_bytes(std::span(text.data(), text.size())));
}

std::string manifest_to_json(const Manifest& m) {
  validate_manifest(m, "manifest being written");
  // Always the current version, whatever version `m` was read from.
  const std::string body = fmt::format(
      "{{\n  \"format\": {},\n  \"format_version\": {},\n  \"step\": {},\n"
      "  \"consumed_samples\": {},\n  \"layout\": {},\n  \"lr_schedule\": {},\n  \"rng\": {},\n"
      "  \"files\": {},\n  \"tensors\": {},\n  \"config_yaml\": {}",
      json_string(kManifestFormat), kManifestVersion, m.step, m.consumed_samples,
      layout_json(m.layout), lr_schedule_json(m.lr_schedule), rng_json(m.rng),
      json_lines(m.files, file_json), json_lines(m.tensors, tensor_json),
      json_string(m.config_yaml));
  return fmt::format("{}{}{}\n}}\n", body, kManifestChecksumMarker, manifest_text_crc32c(body));
}

}  // namespace lt::ckpt
