#include "trainer/data_synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "trainer/data_common.h"

namespace lt {
namespace {

using data_detail::format_number;
using data_detail::sample_from_window;

std::uint64_t split_key(const std::array<std::uint64_t, 2>& keys, Split split) {
  return keys[split == Split::train ? 0 : 1];
}

std::array<std::uint64_t, 2> split_keys(std::uint64_t seed, std::string_view task) {
  const std::string name = "data/" + std::string(task) + "/";
  return {rng_key(seed, name + "train"), rng_key(seed, name + "eval")};
}

// ---------------------------------------------------------------------------------------------
// Associative recall. Disjoint token ranges make every role recognizable from the id alone, so
// a query key can never be confused with noise or a value.
constexpr std::int32_t kFillerBegin = 2;  // 0 and 1 stay free for special tokens
constexpr std::int32_t kKeyBegin = 64;
constexpr std::int32_t kValueBegin = 128;
constexpr std::int32_t kRecallVocab = 192;
constexpr std::int32_t kNumKeys = kValueBegin - kKeyBegin;
constexpr std::int32_t kNumValues = kRecallVocab - kValueBegin;

class AssociativeRecallSource final : public DataSource {
 public:
  AssociativeRecallSource(const DataConfig& config, std::uint64_t seed)
      : seq_len_(config.seq_len),
        pairs_(config.num_pairs),
        queries_(config.num_queries),
        keys_(split_keys(seed, "associative_recall")) {}

  Sample sample(Split split, std::uint64_t index) const override {
    CounterRng rng(split_key(keys_, split), index);
    std::vector<std::int32_t> window(static_cast<std::size_t>(seq_len_ + 1));
    const std::vector<std::int32_t> keys = draw_keys(rng);
    std::vector<std::int32_t> values(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      values[i] = kValueBegin + static_cast<std::int32_t>(rng.below(kNumValues));
      window[2 * i] = keys[i];
      window[2 * i + 1] = values[i];
    }
    for (std::size_t t = keys.size() * 2; t < window.size(); ++t) {
      window[t] = kFillerBegin + static_cast<std::int32_t>(rng.below(kKeyBegin - kFillerBegin));
    }
    const std::vector<std::size_t> slots = draw_query_slots(rng);
    for (std::size_t slot : slots) {
      const std::size_t which = rng.below(static_cast<std::uint32_t>(keys.size()));
      window[slot] = keys[which];
      window[slot + 1] = values[which];
    }
    Sample s = sample_from_window(window, -1, false);
    // Only a query key's target is predictable: the kv block's values are fresh random draws.
    std::fill(s.loss_mask.begin(), s.loss_mask.end(), 0.0f);
    for (std::size_t slot : slots) s.loss_mask[slot] = 1.0f;
    return s;
  }

  std::int64_t min_vocab() const override { return kRecallVocab; }
  std::int64_t seq_len() const override { return seq_len_; }
  std::string describe() const override {
    return "associative recall: " + std::to_string(pairs_) + " pairs, " + std::to_string(queries_) +
           " queries, seq " + std::to_string(seq_len_) + ", vocab " + std::to_string(kRecallVocab);
  }

 private:
  // num_pairs distinct keys: a partial Fisher-Yates shuffle of the key range.
  std::vector<std::int32_t> draw_keys(CounterRng& rng) const {
    std::array<std::int32_t, kNumKeys> all{};
    std::iota(all.begin(), all.end(), kKeyBegin);
    for (std::size_t i = 0; i < static_cast<std::size_t>(pairs_); ++i) {
      const std::size_t j = i + rng.below(static_cast<std::uint32_t>(kNumKeys - i));
      std::swap(all[i], all[j]);
    }
    return {all.begin(), all.begin() + pairs_};
  }

  // Window offsets of num_queries non-overlapping bigrams after the kv block, uniform over all
  // such placements: choose Q distinct "gaps" c_0 < .. < c_{Q-1} in [0, L - Q) (Floyd's
  // algorithm) and put query j at kv_end + c_j + j. The last one ends at or before the window's
  // last token, so every query value is a target.
  std::vector<std::size_t> draw_query_slots(CounterRng& rng) const {
    const std::size_t kv_end = static_cast<std::size_t>(2 * pairs_);
    const std::size_t free = static_cast<std::size_t>(seq_len_ + 1) - kv_end;
    const std::size_t q = static_cast<std::size_t>(queries_);
    const std::size_t gaps = free - q;
    std::vector<bool> chosen(gaps, false);
    for (std::size_t j = gaps - q; j < gaps; ++j) {
      const std::size_t t = rng.below(static_cast<std::uint32_t>(j + 1));
      chosen[chosen[t] ? j : t] = true;
    }
    std::vector<std::size_t> slots;
    slots.reserve(q);
    for (std::size_t c = 0; c < gaps; ++c) {
      if (chosen[c]) slots.push_back(kv_end + c + slots.size());
    }
    return slots;
  }

  std::int64_t seq_len_;
  std::int64_t pairs_;
  std::int64_t queries_;
  std::array<std::uint64_t, 2> keys_;
};

void validate_recall(const DataConfig& c) {
  if (c.num_pairs < 1 || c.num_pairs > kNumKeys) {
    throw ConfigError("data.num_pairs: " + std::to_string(c.num_pairs) + " must be in [1, " +
                      std::to_string(kNumKeys) + "] (keys are distinct, from " +
                      std::to_string(kNumKeys) + " key tokens)");
  }
  if (c.num_queries < 1) {
    throw ConfigError("data.num_queries: " + std::to_string(c.num_queries) + " must be >= 1");
  }
  const std::int64_t needed = 2 * c.num_pairs + 2 * c.num_queries;
  if (needed > c.seq_len + 1) {
    throw ConfigError("data.seq_len: " + std::to_string(c.seq_len) + " is too short for " +
                      "data.num_pairs " + std::to_string(c.num_pairs) + " and data.num_queries " +
                      std::to_string(c.num_queries) +
                      ": 2*num_pairs + 2*num_queries = " + std::to_string(needed) +
                      " tokens must fit in seq_len + 1 = " + std::to_string(c.seq_len + 1));
  }
}

// ---------------------------------------------------------------------------------------------
// Passkey retrieval, byte-level.
constexpr std::string_view kFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
constexpr std::string_view kNeedleA = "The pass key is ";
constexpr std::string_view kNeedleB = ". Remember it. ";
constexpr std::string_view kNeedleC = " is the pass key. ";
constexpr std::string_view kQuestion = "What is the pass key? The pass key is ";
constexpr std::int64_t kMaxDigits = 16;

std::int64_t passkey_overhead(std::int64_t digits) {
  return static_cast<std::int64_t>(kNeedleA.size() + kNeedleB.size() + kNeedleC.size() +
                                   kQuestion.size()) +
         3 * digits;
}

// `length` bytes of filler ending on a whole sentence: a long text cut at the front, the way a
// window into a book starts mid-sentence.
std::string filler_text(std::size_t length) {
  std::string text;
  while (text.size() < length) text += kFiller;
  return text.substr(text.size() - length);
}

// The sentence boundary nearest `depth` of the way through the filler (0 and the end included),
// so the needle never splits a word.
std::size_t needle_offset(const std::string& filler, double depth) {
  const double target = depth * static_cast<double>(filler.size());
  std::size_t best = 0;
  for (std::size_t i = 1; i <= filler.size(); ++i) {
    const bool boundary =
        i == filler.size() || (i >= 2 && filler[i - 2] == '.' && filler[i - 1] == ' ');
    if (boundary &&
        std::abs(static_cast<double>(i) - target) < std::abs(static_cast<double>(best) - target)) {
      best = i;
    }
  }
  return best;
}

class PasskeySource final : public DataSource {
 public:
  PasskeySource(const DataConfig& config, std::uint64_t seed)
      : seq_len_(config.seq_len),
        digits_(config.passkey_digits),
        depth_(config.passkey_depth),
        filler_(filler_text(static_cast<std::size_t>(seq_len_ + 1 - passkey_overhead(digits_)))),
        needle_at_(needle_offset(filler_, depth_)),
        keys_(split_keys(seed, "passkey")) {}

  Sample sample(Split split, std::uint64_t index) const override {
    CounterRng rng(split_key(keys_, split), index);
    std::string key(static_cast<std::size_t>(digits_), '0');
    for (char& d : key) d = static_cast<char>('0' + rng.below(10));
    const std::string_view filler(filler_);
    std::string text;
    text.reserve(static_cast<std::size_t>(seq_len_ + 1));
    text.append(filler.substr(0, needle_at_));
    text.append(kNeedleA).append(key).append(kNeedleB).append(key).append(kNeedleC);
    text.append(filler.substr(needle_at_));
    text.append(kQuestion).append(key);
    const std::vector<std::int32_t> window(text.begin(), text.end());  // ASCII: byte == token
    Sample s = sample_from_window(window, -1, false);
    // Only the answer is scored: the last `digits` targets.
    std::fill(s.loss_mask.begin(), s.loss_mask.end() - digits_, 0.0f);
    return s;
  }

  std::int64_t min_vocab() const override { return 256; }
  std::int64_t seq_len() const override { return seq_len_; }
  std::string describe() const override {
    return "passkey retrieval: " + std::to_string(digits_) + " digits at depth " +
           format_number(depth_) + ", seq " + std::to_string(seq_len_) + ", vocab 256";
  }

 private:
  std::int64_t seq_len_;
  std::int64_t digits_;
  double depth_;
  std::string filler_;
  std::size_t needle_at_;
  std::array<std::uint64_t, 2> keys_;
};

void validate_passkey(const DataConfig& c) {
  if (c.passkey_digits < 1 || c.passkey_digits > kMaxDigits) {
    throw ConfigError("data.passkey_digits: " + std::to_string(c.passkey_digits) +
                      " must be in [1, " + std::to_string(kMaxDigits) + "]");
  }
  if (!(c.passkey_depth >= 0.0 && c.passkey_depth <= 1.0)) {
    throw ConfigError("data.passkey_depth: " + format_number(c.passkey_depth) +
                      " must be in [0, 1] (0: start of the filler, 1: just before the question)");
  }
  const std::int64_t needed = passkey_overhead(c.passkey_digits);
  if (c.seq_len + 1 < needed) {
    throw ConfigError("data.seq_len: " + std::to_string(c.seq_len) + " is too short for a " +
                      "passkey of data.passkey_digits " + std::to_string(c.passkey_digits) +
                      ": the needle and question take " + std::to_string(needed) +
                      " tokens, so seq_len must be at least " + std::to_string(needed - 1));
  }
}

}  // namespace

std::unique_ptr<DataSource> make_associative_recall_source(const DataConfig& config,
                                                           std::uint64_t seed) {
  validate_recall(config);
  return std::make_unique<AssociativeRecallSource>(config, seed);
}

std::unique_ptr<DataSource> make_passkey_source(const DataConfig& config, std::uint64_t seed) {
  validate_passkey(config);
  return std::make_unique<PasskeySource>(config, seed);
}

}  // namespace lt
