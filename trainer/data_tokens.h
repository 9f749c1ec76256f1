// A pre-tokenized file: little-endian uint16 or uint32 ids, memory-mapped. With an EOD token it
// holds documents, and samples carry document ids so attention and loss never cross them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "trainer/config.h"
#include "trainer/data.h"

namespace lt {

// `path` is already resolved. Scans the file once for its largest id (min_vocab). Throws
// ConfigError for an unopenable, truncated or too small file or a bad dtype / eod_token.
std::unique_ptr<DataSource> make_tokens_source(const DataConfig& config, std::uint64_t seed,
                                               const std::string& path);

}  // namespace lt
