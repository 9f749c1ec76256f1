// Synthetic tasks that test recall over long contexts, generated per sample from the RNG.
#pragma once

#include <cstdint>
#include <memory>

#include "trainer/config.h"
#include "trainer/data.h"

namespace lt {

// Multi-query associative recall (Zoology): key-value bigrams, then queries hidden in noise;
// the loss is on recalling each queried key's value. Throws ConfigError for bad sizes.
std::unique_ptr<DataSource> make_associative_recall_source(const DataConfig& config,
                                                           std::uint64_t seed);

// Passkey retrieval: a random number hidden at a chosen depth of filler text, asked for at the
// end. Byte-level. Throws ConfigError for bad sizes.
std::unique_ptr<DataSource> make_passkey_source(const DataConfig& config, std::uint64_t seed);

}  // namespace lt
