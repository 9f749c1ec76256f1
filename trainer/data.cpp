#include "trainer/data.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "trainer/data_common.h"
#include "trainer/data_synthetic.h"
#include "trainer/data_text.h"
#include "trainer/data_tokens.h"

namespace lt {

namespace data_detail {

std::string resolve_data_path(const DataConfig& config, const std::string& config_dir) {
  if (config.path.empty()) {
    throw ConfigError("data.path: required for data.source " + config.source +
                      " (the file to train on)");
  }
  const std::filesystem::path path(config.path);
  if (path.is_absolute() || config_dir.empty()) return path.string();
  return (std::filesystem::path(config_dir) / path).string();
}

MappedFile open_data_file(const std::string& path) {
  try {
    return MappedFile(path);
  } catch (const std::system_error& e) {
    throw ConfigError("data.path: cannot open '" + path + "': " + std::strerror(e.code().value()));
  }
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::uint64_t uniform_below(CounterRng& rng, std::uint64_t n) {
  if (n <= std::numeric_limits<std::uint32_t>::max()) {
    return rng.below(static_cast<std::uint32_t>(n));
  }
  // Rejection on the smallest covering power of two: exact, and fewer than two tries expected.
  const std::uint64_t mask = std::numeric_limits<std::uint64_t>::max() >> std::countl_zero(n - 1);
  while (true) {
    const std::uint64_t hi = rng.next_u32();
    const std::uint64_t value = ((hi << 32) | rng.next_u32()) & mask;
    if (value < n) return value;
  }
}

namespace {

void check_eval_fraction(double fraction) {
  if (!(fraction > 0.0 && fraction < 1.0)) {
    throw ConfigError("data.eval_fraction: " + format_number(fraction) +
                      " must be in (0, 1): the tail of the file held out for eval");
  }
}

}  // namespace

WindowSampler::WindowSampler(std::uint64_t count, const DataConfig& config, std::uint64_t seed,
                             std::string_view source, const std::string& path,
                             std::string_view unit)
    : window_(static_cast<std::uint64_t>(config.seq_len) + 1) {
  check_eval_fraction(config.eval_fraction);
  // Rounding (not truncating) the eval size keeps the split exact for round fractions.
  const auto eval_size =
      static_cast<std::uint64_t>(std::llround(static_cast<double>(count) * config.eval_fraction));
  train_ = {0, count - std::min(eval_size, count)};
  eval_ = {train_.size, count - train_.size};
  if (train_.size < window_ || eval_.size < window_) {
    throw ConfigError("data.path: '" + path + "' holds " + std::to_string(count) + " " +
                      std::string(unit) + ", split into " + std::to_string(train_.size) +
                      " for train and " + std::to_string(eval_.size) + " for eval (eval_fraction " +
                      format_number(config.eval_fraction) + "), but each split needs at least " +
                      "seq_len + 1 = " + std::to_string(window_) + " " + std::string(unit));
  }
  const std::string name = "data/" + std::string(source) + "/";
  train_key_ = rng_key(seed, name + "train");
  eval_key_ = rng_key(seed, name + "eval");
}

std::uint64_t WindowSampler::start(Split split, std::uint64_t index) const {
  const Region r = region(split);
  CounterRng rng(split == Split::train ? train_key_ : eval_key_, index);
  return r.begin + uniform_below(rng, r.size - window_ + 1);
}

Sample sample_from_window(std::span<const std::int32_t> window, std::int64_t eod_token,
                          bool reset_positions) {
  const std::size_t n = window.size() - 1;
  Sample s;
  s.tokens.assign(window.begin(), window.end() - 1);
  s.targets.assign(window.begin() + 1, window.end());
  s.loss_mask.resize(n);
  s.doc_ids.resize(n);
  s.positions.resize(n);
  std::int32_t doc = 0;
  std::int32_t position = 0;
  for (std::size_t t = 0; t < n; ++t) {
    const bool eod = eod_token >= 0 && s.tokens[t] == eod_token;
    s.loss_mask[t] = eod ? 0.0f : 1.0f;
    s.doc_ids[t] = doc;
    s.positions[t] = reset_positions ? position : static_cast<std::int32_t>(t);
    ++position;
    if (eod) {  // the EOD closes its document; the next token opens a new one
      ++doc;
      position = 0;
    }
  }
  return s;
}

}  // namespace data_detail

std::int64_t Batch::loss_tokens() const {
  return std::count_if(loss_mask.begin(), loss_mask.end(), [](float w) { return w != 0.0f; });
}

namespace {

// Positions and doc ids are int32 and a window holds seq_len + 1 tokens.
constexpr std::int64_t kMaxSeqLen = std::numeric_limits<std::int32_t>::max() - 1;

std::unique_ptr<DataSource> make_synthetic_source(const DataConfig& config, std::uint64_t seed) {
  if (config.task == "associative_recall") return make_associative_recall_source(config, seed);
  if (config.task == "passkey") return make_passkey_source(config, seed);
  throw ConfigError("data.task: unknown synthetic task '" + config.task +
                    "' (expected associative_recall or passkey)");
}

template <typename Column>
void append_row(Column& dst, const Column& src, std::int64_t seq_len, const char* what) {
  if (static_cast<std::int64_t>(src.size()) != seq_len) {
    throw std::logic_error(std::string("make_batch: a sample's ") + what + " has " +
                           std::to_string(src.size()) + " entries, expected seq_len " +
                           std::to_string(seq_len));
  }
  dst.insert(dst.end(), src.begin(), src.end());
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const DataConfig& config, std::uint64_t seed,
                                             const std::string& config_dir) {
  if (config.seq_len < 1 || config.seq_len > kMaxSeqLen) {
    throw ConfigError("data.seq_len: " + std::to_string(config.seq_len) + " must be in [1, " +
                      std::to_string(kMaxSeqLen) + "]");
  }
  if (config.source == "synthetic") return make_synthetic_source(config, seed);
  if (config.source == "text") {
    return make_text_source(config, seed, data_detail::resolve_data_path(config, config_dir));
  }
  if (config.source == "tokens") {
    return make_tokens_source(config, seed, data_detail::resolve_data_path(config, config_dir));
  }
  throw ConfigError("data.source: unknown source '" + config.source +
                    "' (expected synthetic, text or tokens)");
}

Batch make_batch(const DataSource& source, Split split, std::uint64_t first_index,
                 std::int64_t count) {
  if (count < 0) throw std::invalid_argument("make_batch: negative count " + std::to_string(count));
  Batch b;
  b.batch = count;
  b.seq_len = source.seq_len();
  const auto total = static_cast<std::size_t>(b.num_tokens());
  b.tokens.reserve(total);
  b.targets.reserve(total);
  b.loss_mask.reserve(total);
  b.doc_ids.reserve(total);
  b.positions.reserve(total);
  for (std::int64_t row = 0; row < count; ++row) {
    const Sample s = source.sample(split, first_index + static_cast<std::uint64_t>(row));
    append_row(b.tokens, s.tokens, b.seq_len, "tokens");
    append_row(b.targets, s.targets, b.seq_len, "targets");
    append_row(b.loss_mask, s.loss_mask, b.seq_len, "loss_mask");
    append_row(b.doc_ids, s.doc_ids, b.seq_len, "doc_ids");
    append_row(b.positions, s.positions, b.seq_len, "positions");
  }
  return b;
}

}  // namespace lt
