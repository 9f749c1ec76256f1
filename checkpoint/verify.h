// Checking a checkpoint before trusting it, and choosing the one to resume from. A checkpoint is
// intact when its manifest parses and validates, names its own step, and every file it lists is
// there with the listed size and CRC32C, is a valid safetensors file, and holds each shard under
// its key with the tensor's dtype and the shard's element count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "checkpoint/manifest.h"

namespace lt::ckpt {

struct VerifyResult {
  std::optional<Manifest> manifest;  // set when the checkpoint is intact
  std::string problem;               // otherwise the file and the reason, in one line

  explicit operator bool() const { return manifest.has_value(); }
};

// Verifies the checkpoint in `dir` (a step_N directory). Reads every listed file once.
VerifyResult verify(const std::filesystem::path& dir);

struct FoundCheckpoint {
  std::filesystem::path dir;
  Manifest manifest;
};

// The newest intact checkpoint under `root`, or nothing. Step directories are tried newest
// first; each one that fails verification is reported through `warn` with its problem, and the
// next older one is tried. A step_N directory newer than `latest` is complete by construction
// (it is renamed into place only after its manifest is written), so the scan, not `latest`,
// decides; a `latest` that names no checkpoint is reported. Temporary step_N.tmp directories
// are never considered.
std::optional<FoundCheckpoint> find_latest_valid(
    const std::filesystem::path& root, const std::function<void(const std::string&)>& warn);

// The CRC32C of a whole file, read sequentially in large pieces.
std::uint32_t file_crc32c(const std::filesystem::path& path);

}  // namespace lt::ckpt
