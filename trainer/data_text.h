// A raw text file read as bytes (vocabulary 256): windows at random offsets of its head (train)
// or tail (eval).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "trainer/config.h"
#include "trainer/data.h"

namespace lt {

// `path` is already resolved. Throws ConfigError when it cannot be opened or is too small.
std::unique_ptr<DataSource> make_text_source(const DataConfig& config, std::uint64_t seed,
                                             const std::string& path);

}  // namespace lt
