// Internal invariant checks. A failed check is a bug or a bad shape passed between modules; user
// input is validated at the boundary (config, CLI) with its own messages.
#pragma once

#include <sstream>
#include <stdexcept>

namespace lt {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lt

#define LT_CHECK(cond, msg)                                           \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::ostringstream lt_check_stream_;                            \
      lt_check_stream_ << __FILE__ << ":" << __LINE__ << ": " << msg; \
      throw ::lt::Error(lt_check_stream_.str());                      \
    }                                                                 \
  } while (0)
