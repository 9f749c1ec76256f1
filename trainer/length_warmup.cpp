#include "trainer/length_warmup.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/error.h"

namespace lt {
namespace {

class PackedSource final : public DataSource {
 public:
  PackedSource(std::unique_ptr<DataSource> inner, std::int64_t seq_len)
      : inner_(std::move(inner)), seq_len_(seq_len), per_sequence_(seq_len / inner_->seq_len()) {}

  Sample sample(Split split, std::uint64_t index) const override {
    Sample packed;
    std::int32_t doc_base = 0;
    for (std::int64_t j = 0; j < per_sequence_; ++j) {
      const Sample part = inner_->sample(
          split, index * static_cast<std::uint64_t>(per_sequence_) + static_cast<std::uint64_t>(j));
      append(packed.tokens, part.tokens);
      append(packed.targets, part.targets);
      append(packed.loss_mask, part.loss_mask);
      append(packed.positions, part.positions);
      for (std::int32_t doc : part.doc_ids) packed.doc_ids.push_back(doc_base + doc);
      doc_base = packed.doc_ids.back() + 1;
    }
    return packed;
  }

  std::int64_t min_vocab() const override { return inner_->min_vocab(); }
  std::int64_t seq_len() const override { return seq_len_; }
  std::string describe() const override {
    return std::to_string(per_sequence_) + " documents of " + std::to_string(inner_->seq_len()) +
           " tokens per sequence of " + std::to_string(seq_len_) + " (" + inner_->describe() + ")";
  }

 private:
  template <class T>
  static void append(std::vector<T>& to, const std::vector<T>& from) {
    to.insert(to.end(), from.begin(), from.end());
  }

  std::unique_ptr<DataSource> inner_;
  std::int64_t seq_len_;
  std::int64_t per_sequence_;
};

ConfigError start_error(const DataConfig& c, const std::string& why) {
  return ConfigError("data.length_warmup_start: " + std::to_string(c.length_warmup_start) + " " +
                     why);
}

// The data config for documents of `length` tokens.
DataConfig shortened(const DataConfig& c, std::int64_t length) {
  DataConfig s = c;
  s.seq_len = length;
  if (c.source == "synthetic" && c.task == "associative_recall") {
    // Keep the density of queries; at least one, and no more than the document holds.
    const std::int64_t room = (length + 1 - 2 * c.num_pairs) / 2;
    if (room < 1) {
      throw start_error(c, "is too short for data.num_pairs " + std::to_string(c.num_pairs) +
                               ": a document needs 2*num_pairs + 1 = " +
                               std::to_string(2 * c.num_pairs + 1) + " tokens for one query");
    }
    const auto scaled = static_cast<std::int64_t>(
        std::llround(static_cast<double>(c.num_queries * length) / static_cast<double>(c.seq_len)));
    s.num_queries = std::clamp<std::int64_t>(scaled, 1, room);
  }
  return s;
}

}  // namespace

struct LengthWarmup::Stage {
  std::int64_t length;
  std::unique_ptr<DataSource> source;
};

LengthWarmup::LengthWarmup(const DataConfig& config, std::uint64_t seed,
                           const std::string& config_dir)
    : steps_(config.length_warmup_steps), seq_len_(config.seq_len) {
  if (steps_ == 0) return;
  const std::int64_t start = config.length_warmup_start;
  if (start >= config.seq_len || config.seq_len % start != 0 ||
      !std::has_single_bit(static_cast<std::uint64_t>(config.seq_len / start))) {
    throw start_error(config, "must be data.seq_len (" + std::to_string(config.seq_len) +
                                  ") divided by a power of two (e.g. " +
                                  std::to_string(config.seq_len / 4) + "): document lengths " +
                                  "double from it up to seq_len");
  }
  for (std::int64_t length = start; length < config.seq_len; length *= 2) {
    std::unique_ptr<DataSource> inner;
    try {
      inner = make_data_source(shortened(config, length), seed, config_dir);
    } catch (const ConfigError& e) {
      throw start_error(config, "gives documents of " + std::to_string(length) +
                                    " tokens, which the data cannot make: " + e.what());
    }
    stages_.push_back({length, make_packed_source(std::move(inner), config.seq_len)});
  }
}

LengthWarmup::~LengthWarmup() = default;

std::size_t LengthWarmup::stage_index(std::int64_t step) const {
  // Equal step intervals per length: [i * steps / n, (i + 1) * steps / n).
  return static_cast<std::size_t>(step * static_cast<std::int64_t>(stages_.size()) / steps_);
}

std::int64_t LengthWarmup::document_length(std::int64_t step) const {
  if (!enabled() || step >= steps_) return seq_len_;
  return stages_[stage_index(step)].length;
}

const DataSource* LengthWarmup::source_for(std::int64_t step) const {
  if (!enabled() || step >= steps_) return nullptr;
  return stages_[stage_index(step)].source.get();
}

std::unique_ptr<DataSource> make_packed_source(std::unique_ptr<DataSource> inner,
                                               std::int64_t seq_len) {
  LT_CHECK(inner->seq_len() > 0 && seq_len % inner->seq_len() == 0,
           "packing documents of " << inner->seq_len() << " into sequences of " << seq_len);
  return std::make_unique<PackedSource>(std::move(inner), seq_len);
}

}  // namespace lt
