// Training data: every sample is a pure function of (seed, split, global sample index), so any
// rank can build any part of any batch and a resumed run sees the same stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/config.h"

namespace lt {

enum class Split { train, eval };

// One sequence: inputs and next-token targets, with per-token loss weight (0 or 1), document id
// (attention never crosses documents) and RoPE position (restarts per document when asked).
struct Sample {
  std::vector<std::int32_t> tokens;
  std::vector<std::int32_t> targets;
  std::vector<float> loss_mask;
  std::vector<std::int32_t> doc_ids;
  std::vector<std::int32_t> positions;
};

// `batch` samples of `seq_len` tokens, row-major [batch, seq_len].
struct Batch {
  std::int64_t batch = 0;
  std::int64_t seq_len = 0;
  std::vector<std::int32_t> tokens;
  std::vector<std::int32_t> targets;
  std::vector<float> loss_mask;
  std::vector<std::int32_t> doc_ids;
  std::vector<std::int32_t> positions;

  std::int64_t num_tokens() const { return batch * seq_len; }
  // Number of tokens with a non-zero loss weight.
  std::int64_t loss_tokens() const;
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual Sample sample(Split split, std::uint64_t global_index) const = 0;
  // The smallest vocabulary that holds every token this source emits.
  virtual std::int64_t min_vocab() const = 0;
  virtual std::string describe() const = 0;
  virtual std::int64_t seq_len() const = 0;
};

// Builds the source the config names. `config_dir` resolves relative paths. Throws ConfigError
// for a missing or malformed file.
std::unique_ptr<DataSource> make_data_source(const DataConfig& config, std::uint64_t seed,
                                             const std::string& config_dir);

// Samples [first_index, first_index + count) of a split, stacked into a batch.
Batch make_batch(const DataSource& source, Split split, std::uint64_t first_index,
                 std::int64_t count);

}  // namespace lt
