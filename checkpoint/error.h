// The one exception type of the checkpoint module. Every message names the file it is about, the
// field or entry inside it, and what was expected, so that a skipped or refused checkpoint says
// why in one line. Callers (the trainer, the fuzz harness) catch this type only: anything else
// escaping the module is a bug.
#pragma once

#include <stdexcept>
#include <string>

namespace lt::ckpt {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lt::ckpt
