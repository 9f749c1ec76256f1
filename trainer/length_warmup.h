// Sequence-length warmup: for the first data.length_warmup_steps training steps, every training
// sequence is packed with independent shorter documents (attention masked at their boundaries,
// positions restarting at 0), starting at data.length_warmup_start tokens and doubling in equal
// step intervals up to data.seq_len. Tensor shapes never change, so every parallel layout runs
// the warmup unchanged; eval always uses full-length samples.
//
// Why: circuits that look things up in context (induction heads, the recall tasks) form much
// sooner on short contexts and then carry over to long ones; on the quickstart's recall task a
// 2-layer model that plateaus for thousands of steps at 256 tokens learns in a few hundred with
// the warmup.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/config.h"
#include "trainer/data.h"

namespace lt {

class LengthWarmup {
 public:
  // Builds one source per warmup length from `config` (shorter seq_len; associative recall
  // scales num_queries with the length). No stages when data.length_warmup_steps is 0. Throws
  // ConfigError naming data.length_warmup_start when the lengths do not work.
  LengthWarmup(const DataConfig& config, std::uint64_t seed, const std::string& config_dir);
  LengthWarmup(const LengthWarmup&) = delete;
  LengthWarmup& operator=(const LengthWarmup&) = delete;
  ~LengthWarmup();

  // Document length for training step `step` (0-based): seq_len once the warmup is over.
  std::int64_t document_length(std::int64_t step) const;
  // The packed source for `step`, or nullptr once the warmup is over (use the full source).
  const DataSource* source_for(std::int64_t step) const;
  bool enabled() const { return !stages_.empty(); }

 private:
  struct Stage;
  std::size_t stage_index(std::int64_t step) const;

  std::int64_t steps_ = 0;
  std::int64_t seq_len_ = 0;
  std::vector<Stage> stages_;
};

// `inner` samples of `inner->seq_len()` tokens packed seq_len / inner->seq_len() to a sequence:
// sample i holds inner samples [i * k, (i + 1) * k), document ids made distinct, positions as
// each inner sample has them. seq_len must be a multiple of the inner length.
std::unique_ptr<DataSource> make_packed_source(std::unique_ptr<DataSource> inner,
                                               std::int64_t seq_len);

}  // namespace lt
