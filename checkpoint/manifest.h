// The manifest of a checkpoint (manifest.json in its directory): what was saved, by which
// layout, and how to check and reassemble it. Every tensor is described by its global shape and
// dtype and by its shards: each shard is a tensor-parallel slice of the global tensor (per-
// dimension offsets and the slice's shape) stored under `key` in one of the files, optionally
// only a flat range of the slice's row-major elements (a ZeRO shard). Every file is listed with
// its size and CRC32C, so a checkpoint is verified without trusting anything in it.
//
// The JSON is written deterministically (fixed key order, std::map order for maps, the vectors'
// order) and parsed by a validating reader: every field is type-checked and bounded, and every
// rule between fields (shards inside their tensor, files listed once, a world of tp·cp·dp ranks)
// is checked, with errors naming the manifest's path and the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/tensor_dtype.h"

namespace lt::ckpt {

inline constexpr std::string_view kManifestFormat = "longtrain-checkpoint";
// Version 2 ends with "manifest_crc32c", the CRC32C of the text before it, so that a flipped
// byte that leaves valid JSON (in config_yaml, say) is caught too. Version 1 (no checksum) is
// still read.
inline constexpr std::int64_t kManifestVersion = 2;
inline constexpr std::int64_t kOldestManifestVersion = 1;
// What precedes the checksum member in the text; the checksum covers everything before it.
inline constexpr std::string_view kManifestChecksumMarker = ",\n  \"manifest_crc32c\": ";
inline constexpr std::uint64_t kMaxManifestBytes = std::uint64_t{1} << 30;

// The process layout of the run that wrote the checkpoint.
struct Layout {
  std::int64_t tp = 1;
  std::int64_t cp = 1;
  std::int64_t dp = 1;
  std::int64_t zero_stage = 0;
  std::int64_t world_size = 1;  // tp · cp · dp
};

struct FileRecord {
  std::string name;  // a plain file name inside the checkpoint directory
  std::uint64_t bytes = 0;
  std::uint32_t crc32c = 0;
};

// Elements [begin, end) of a slice, counted row-major.
struct ElementRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct ShardRecord {
  std::string file;                      // one of Manifest::files
  std::string key;                       // the tensor's name inside that safetensors file
  std::vector<std::uint64_t> offsets;    // of the tp slice in the global tensor, per dimension
  std::vector<std::uint64_t> shape;      // of the tp slice (the global shape without tp)
  std::optional<ElementRange> elements;  // a ZeRO shard of the slice; absent: the whole slice
};

struct TensorRecord {
  std::string name;
  TensorDtype dtype = TensorDtype::f32;
  std::vector<std::uint64_t> global_shape;
  std::vector<ShardRecord> shards;
};

struct Manifest {
  std::int64_t format_version = kManifestVersion;
  std::int64_t step = 0;
  std::uint64_t consumed_samples = 0;
  Layout layout;
  std::map<std::string, double> lr_schedule;              // e.g. {"lr": 3e-4}
  std::map<std::string, std::vector<std::uint64_t>> rng;  // named generator states
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;
  std::string config_yaml;  // the resolved config the run used

  const FileRecord* find_file(std::string_view name) const;
  const TensorRecord* find_tensor(std::string_view name) const;
};

// A file name a manifest may list: 1 to 255 of [A-Za-z0-9._-], not starting with '.', so that no
// manifest can point outside its directory.
bool is_valid_file_name(std::string_view name);

// "version N, but this build reads versions 1 to 2".
std::string unsupported_version(std::int64_t version);

// The CRC32C of a manifest's text before kManifestChecksumMarker.
std::uint32_t manifest_text_crc32c(std::string_view text);

// Checks the rules between fields; throws CheckpointError naming `source` and the key.
void validate_manifest(const Manifest& manifest, const std::string& source);

// The JSON text (validated first, so what is written can be read back).
std::string manifest_to_json(const Manifest& manifest);

// Parses and validates; `source` names the manifest in errors.
Manifest parse_manifest(std::string_view json, const std::string& source);
// Reads (at most kMaxManifestBytes) and parses a manifest file.
Manifest read_manifest(const std::filesystem::path& path);

}  // namespace lt::ckpt
