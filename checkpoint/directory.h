// The on-disk protocol of checkpoints under a root directory:
//
//   root/step_00001200/           a complete checkpoint: the rank files and manifest.json
//   root/step_00001300.tmp/       a save in progress (or torn by a crash): never read
//   root/latest                   "step_00001200\n", replaced atomically after each save
//
// Saving step N: rank 0 calls begin_save (a fresh step_N.tmp/), every rank writes its file into
// it (SafetensorsWriter::write fsyncs it) and, after a barrier, rank 0 calls commit_save with the
// manifest listing every file's size and CRC32C: manifest.json is written and fsynced, the
// directory renamed to step_N and the root fsynced, then `latest` is replaced
// (write-new-then-rename). A crash at any point leaves either the previous checkpoints alone or a
// complete step_N; a step_N directory therefore exists only once it is complete, which is what
// find_latest_valid (verify.h) relies on. prune keeps the newest K complete checkpoints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/manifest.h"

namespace lt::ckpt {

inline constexpr std::string_view kManifestFileName = "manifest.json";
inline constexpr std::string_view kLatestFileName = "latest";

// "step_00001234" (at least 8 digits). Throws CheckpointError for a negative step.
std::string step_dir_name(std::int64_t step);
// The step of a complete checkpoint's directory name ("step_" and digits only), or nothing.
std::optional<std::int64_t> parse_step_dir_name(std::string_view name);
// "rank_00003.safetensors": the file rank `rank` writes.
std::string rank_file_name(std::int64_t rank);

std::filesystem::path step_dir(const std::filesystem::path& root, std::int64_t step);
std::filesystem::path tmp_dir(const std::filesystem::path& root, std::int64_t step);
// Where a rank writes `file_name` while step `step` is being saved (inside tmp_dir).
std::filesystem::path file_path(const std::filesystem::path& root, std::int64_t step,
                                std::string_view file_name);

// The steps of root's step_N directories (complete or damaged; no .tmp), ascending. A missing
// root has none.
std::vector<std::int64_t> list_steps(const std::filesystem::path& root);

// Rank 0, before any rank writes: creates root if needed and an empty tmp_dir (removing a stale
// one). Returns tmp_dir.
std::filesystem::path begin_save(const std::filesystem::path& root, std::int64_t step);

// Rank 0, after every rank has written and fsynced its file. Checks that each file the manifest
// lists is there with its size (not its CRC: the writers computed those), then publishes the
// checkpoint as described above. An existing step_N (a damaged one, skipped at resume) is
// replaced atomically where the file system allows it.
void commit_save(const std::filesystem::path& root, std::int64_t step, const Manifest& manifest);

// Removes complete checkpoints (a step_N holding manifest.json) beyond the newest `keep`
// (at least 1, so the newest is never removed), and step_N.tmp directories older than the newest
// complete one. Damaged step_N directories are left for inspection. Returns what was removed.
std::vector<std::filesystem::path> prune(const std::filesystem::path& root, int keep);

}  // namespace lt::ckpt
