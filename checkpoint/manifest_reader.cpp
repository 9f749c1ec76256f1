// The validating parser of manifest.json: every field type-checked and bounded here, the rules
// between fields in validate_manifest.
#include <fmt/format.h>

#include "checkpoint/error.h"
#include "checkpoint/json_reader.h"
#include "checkpoint/json_writer.h"
#include "checkpoint/manifest.h"
#include "checkpoint/posix_file.h"
#include "checkpoint/safetensors_header.h"

namespace lt::ckpt {
namespace {

// Bounds on what a manifest may hold, far above any real model, so that a hostile manifest
// cannot make the reader allocate without limit beyond the file's own size cap.
constexpr std::size_t kMaxNameBytes = 4096;
constexpr std::size_t kMaxConfigBytes = std::size_t{64} << 20;
constexpr std::size_t kMaxFiles = std::size_t{1} << 20;
constexpr std::size_t kMaxTensors = std::size_t{1} << 22;
constexpr std::size_t kMaxShards = std::size_t{1} << 20;
constexpr std::size_t kMaxMapEntries = 4096;
constexpr std::uint64_t kMaxLayoutValue = std::uint64_t{1} << 24;

std::vector<std::uint64_t> parse_uints(const JsonValue& v, std::size_t max_items) {
  std::vector<std::uint64_t> out;
  for (const JsonValue& item : v.items(max_items)) out.push_back(item.uint64());
  return out;
}

Layout parse_layout(const JsonValue& v) {
  v.expect_keys({"tp", "cp", "dp", "zero_stage", "world_size"});
  const auto get = [&](std::string_view key) {
    return static_cast<std::int64_t>(v.at(key).uint64(kMaxLayoutValue));
  };
  return Layout{get("tp"), get("cp"), get("dp"), get("zero_stage"), get("world_size")};
}

std::map<std::string, double> parse_lr_schedule(const JsonValue& v) {
  std::map<std::string, double> out;
  const auto members = v.members();
  if (members.size() > kMaxMapEntries) v.fail(fmt::format("more than {} entries", kMaxMapEntries));
  for (const auto& [key, value] : members) out.emplace(key, value.number());
  return out;
}

std::map<std::string, std::vector<std::uint64_t>> parse_rng(const JsonValue& v) {
  std::map<std::string, std::vector<std::uint64_t>> out;
  const auto members = v.members();
  if (members.size() > kMaxMapEntries) v.fail(fmt::format("more than {} entries", kMaxMapEntries));
  for (const auto& [key, value] : members) out.emplace(key, parse_uints(value, kMaxMapEntries));
  return out;
}

FileRecord parse_file(const JsonValue& v) {
  v.expect_keys({"name", "bytes", "crc32c"});
  return FileRecord{v.at("name").string(kMaxNameBytes), v.at("bytes").uint64(),
                    static_cast<std::uint32_t>(v.at("crc32c").uint64(UINT32_MAX))};
}

std::optional<ElementRange> parse_elements(const JsonValue& shard) {
  const std::optional<JsonValue> v = shard.find("elements");
  if (!v) return std::nullopt;
  const std::vector<std::uint64_t> range = parse_uints(*v, 2);
  if (range.size() != 2) v->fail("expected [begin, end]");
  return ElementRange{range[0], range[1]};
}

ShardRecord parse_shard(const JsonValue& v) {
  v.expect_keys({"file", "key", "offsets", "shape", "elements"});
  return ShardRecord{v.at("file").string(kMaxNameBytes), v.at("key").string(kMaxNameBytes),
                     parse_uints(v.at("offsets"), kMaxTensorRank),
                     parse_uints(v.at("shape"), kMaxTensorRank), parse_elements(v)};
}

TensorRecord parse_tensor(const JsonValue& v) {
  v.expect_keys({"name", "dtype", "global_shape", "shards"});
  TensorRecord t;
  t.name = v.at("name").string(kMaxNameBytes);
  const JsonValue dtype = v.at("dtype");
  const std::string dtype_text = dtype.string(kMaxNameBytes);
  const auto parsed = dtype_from_name(dtype_text);
  if (!parsed) dtype.fail(fmt::format("unknown dtype {}", json_string(dtype_text)));
  t.dtype = *parsed;
  t.global_shape = parse_uints(v.at("global_shape"), kMaxTensorRank);
  for (const JsonValue& s : v.at("shards").items(kMaxShards)) t.shards.push_back(parse_shard(s));
  return t;
}

// Version 2: the recorded CRC32C must be that of the text before the checksum member. Checked
// after the fields, whose own errors say more when one of them is malformed.
void check_manifest_checksum(std::string_view json, const JsonValue& recorded) {
  const auto recorded_crc = static_cast<std::uint32_t>(recorded.uint64(0xFFFFFFFFu));
  const std::size_t at = json.rfind(kManifestChecksumMarker);
  if (at == std::string_view::npos)
    recorded.fail("expected it as the last member, after config_yaml");
  const std::uint32_t actual = manifest_text_crc32c(json.substr(0, at));
  if (actual != recorded_crc)
    recorded.fail(fmt::format(
        "the manifest's text has CRC32C 0x{:08x}, it records 0x{:08x} (corrupt manifest)", actual,
        recorded_crc));
}

}  // namespace

Manifest parse_manifest(std::string_view json, const std::string& source) {
  const JsonValue root = JsonValue::parse(json, source);
  Manifest m;
  const JsonValue version = root.at("format_version");
  m.format_version = version.int64();
  // Checked before the rest: a newer format may have changed any other field.
  if (m.format_version < kOldestManifestVersion || m.format_version > kManifestVersion)
    version.fail(unsupported_version(m.format_version));
  const bool checksummed = m.format_version >= 2;
  if (checksummed) {
    root.expect_keys({"format", "format_version", "step", "consumed_samples", "layout",
                      "lr_schedule", "rng", "files", "tensors", "config_yaml", "manifest_crc32c"});
  } else {
    root.expect_keys({"format", "format_version", "step", "consumed_samples", "layout",
                      "lr_schedule", "rng", "files", "tensors", "config_yaml"});
  }
  const JsonValue format = root.at("format");
  if (format.string(kMaxNameBytes) != kManifestFormat)
    format.fail(fmt::format("expected {}", json_string(kManifestFormat)));
  m.step = root.at("step").int64();
  m.consumed_samples = root.at("consumed_samples").uint64();
  m.layout = parse_layout(root.at("layout"));
  m.lr_schedule = parse_lr_schedule(root.at("lr_schedule"));
  m.rng = parse_rng(root.at("rng"));
  for (const JsonValue& f : root.at("files").items(kMaxFiles)) m.files.push_back(parse_file(f));
  for (const JsonValue& t : root.at("tensors").items(kMaxTensors))
    m.tensors.push_back(parse_tensor(t));
  m.config_yaml = root.at("config_yaml").string(kMaxConfigBytes);
  validate_manifest(m, source);
  if (checksummed) check_manifest_checksum(json, root.at("manifest_crc32c"));
  return m;
}

Manifest read_manifest(const std::filesystem::path& path) {
  return parse_manifest(read_text_file(path, kMaxManifestBytes), path.string());
}

}  // namespace lt::ckpt
