// Finding the checkpoint a command-line path names: a step_N directory (verified), or a
// checkpoint root, meaning its newest intact checkpoint. `export` and `generate` read checkpoints
// this way; a path that names no usable checkpoint is bad input (HfError, exit 2).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "checkpoint/checkpoint.h"

namespace lt {

// The checkpoint `path` names, with its manifest. Checkpoints of a root skipped as damaged are
// reported through `warn` (may be empty). Throws HfError naming the path and the problem.
ckpt::FoundCheckpoint find_checkpoint(const std::filesystem::path& path,
                                      const std::function<void(const std::string&)>& warn);

}  // namespace lt
