// The error of HuggingFace interchange: a checkpoint to export, an export directory or a
// HuggingFace model directory to load that is missing, incomplete or inconsistent. The message
// names the file or directory, the tensor or key, and what was expected. The CLI reports it as
// bad input (exit 2); a failure to write (a full disk) is another exception.
#pragma once

#include <stdexcept>

namespace lt {

class HfError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lt
