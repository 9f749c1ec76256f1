#include "trainer/checkpoint_locate.h"

#include <fmt/format.h>

#include <optional>

#include "trainer/hf_error.h"

namespace lt {
namespace fs = std::filesystem;
namespace {

using Warn = std::function<void(const std::string&)>;

ckpt::FoundCheckpoint locate_checkpoint(const fs::path& path, const Warn& warn) {
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    throw HfError(fmt::format("checkpoint {}: {}", path.string(),
                              fs::exists(path, ec) ? "not a directory" : "no such directory"));
  const fs::path name = path.has_filename() ? path.filename() : path.parent_path().filename();
  if (ckpt::parse_step_dir_name(name.string()) || fs::exists(path / ckpt::kManifestFileName, ec)) {
    ckpt::VerifyResult verified = ckpt::verify(path);
    if (!verified) throw HfError("checkpoint damaged: " + verified.problem);
    return {path, std::move(*verified.manifest)};
  }
  std::optional<ckpt::FoundCheckpoint> found = ckpt::find_latest_valid(
      path, warn ? warn : [](const std::string&) {});
  if (found) return std::move(*found);
  if (ckpt::list_steps(path).empty())
    throw HfError(fmt::format("checkpoint {}: no checkpoint in it (no step_NNNNNNNN directory)",
                              path.string()));
  throw HfError(fmt::format("checkpoint {}: none of its checkpoints is intact", path.string()));
}

}  // namespace

// Problems reading the checkpoint are bad input (HfError), like a missing one.
ckpt::FoundCheckpoint find_checkpoint(const fs::path& path, const Warn& warn) {
  try {
    return locate_checkpoint(path, warn);
  } catch (const ckpt::CheckpointError& e) {
    throw HfError(e.what());
  }
}

}  // namespace lt
