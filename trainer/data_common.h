// Internal helpers shared by the data sources (not part of the public API): path resolution,
// the train/eval split of a file, window offsets and turning a token window into a Sample.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/rng.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/mapped_file.h"

namespace lt::data_detail {

// `config.path` relative to `config_dir` unless absolute. Throws ConfigError when it is empty.
std::string resolve_data_path(const DataConfig& config, const std::string& config_dir);

// Maps the file, turning any failure into "data.path: cannot open '<path>': <strerror>".
MappedFile open_data_file(const std::string& path);

// A double as YAML would show it ("0.05", not "0.050000").
std::string format_number(double value);

// Uniform integer in [0, n), n > 0, for ranges that may exceed 2^32 (large token files).
std::uint64_t uniform_below(CounterRng& rng, std::uint64_t n);

struct Region {
  std::uint64_t begin = 0;
  std::uint64_t size = 0;
};

// Places windows of seq_len + 1 elements uniformly inside the train region (the head of the
// file) or the eval region (the last eval_fraction of it), each split with its own stream.
class WindowSampler {
 public:
  // `count` elements named `unit` ("bytes", "tokens") in `path`; `source` names the RNG stream.
  // Throws ConfigError when eval_fraction is outside (0, 1) or a region cannot hold a window.
  WindowSampler(std::uint64_t count, const DataConfig& config, std::uint64_t seed,
                std::string_view source, const std::string& path, std::string_view unit);

  // First element of the window for sample `index` of `split`.
  std::uint64_t start(Split split, std::uint64_t index) const;
  Region region(Split split) const { return split == Split::train ? train_ : eval_; }

 private:
  Region train_;
  Region eval_;
  std::uint64_t window_;
  std::uint64_t train_key_;
  std::uint64_t eval_key_;
};

// A Sample from seq_len + 1 tokens: inputs window[0, S), targets window[1, S]. With
// eod_token >= 0, a document ends after each EOD input (which gets loss weight 0, since its
// target starts the next document); other inputs get weight 1. Positions count from 0 and, with
// reset_positions, restart at each document.
Sample sample_from_window(std::span<const std::int32_t> window, std::int64_t eod_token,
                          bool reset_positions);

}  // namespace lt::data_detail
