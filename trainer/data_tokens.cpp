#include "trainer/data_tokens.h"

#include <algorithm>
#include <limits>
#include <span>
#include <vector>

#include "trainer/data_common.h"
#include "trainer/mapped_file.h"

namespace lt {
namespace {

// Assembled byte by byte so the file reads the same on any host; with W known at compile time
// the compiler turns this into a plain load on little-endian machines.
template <std::size_t W>
std::uint32_t load_le(const std::byte* p) {
  std::uint32_t value = 0;
  for (std::size_t b = 0; b < W; ++b) value |= std::to_integer<std::uint32_t>(p[b]) << (8 * b);
  return value;
}

template <std::size_t W>
std::uint32_t max_token(std::span<const std::byte> bytes) {
  std::uint32_t best = 0;
  for (std::size_t i = 0; i + W <= bytes.size(); i += W)
    best = std::max(best, load_le<W>(&bytes[i]));
  return best;
}

template <std::size_t W>
void load_tokens(std::span<const std::byte> bytes, std::span<std::int32_t> out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::int32_t>(load_le<W>(&bytes[i * W]));
  }
}

std::size_t token_width(const std::string& dtype) {
  if (dtype == "uint16") return 2;
  if (dtype == "uint32") return 4;
  throw ConfigError("data.token_dtype: unknown '" + dtype + "' (expected uint16 or uint32)");
}

void check_eod(const DataConfig& config, std::size_t width) {
  const std::int64_t limit = width == 2 ? std::int64_t{std::numeric_limits<std::uint16_t>::max()}
                                        : std::int64_t{std::numeric_limits<std::int32_t>::max()};
  if (config.eod_token < -1 || config.eod_token > limit) {
    throw ConfigError("data.eod_token: " + std::to_string(config.eod_token) +
                      " must be -1 (no documents) or an id in [0, " + std::to_string(limit) +
                      "] for data.token_dtype " + config.token_dtype);
  }
}

// Opens the file and checks it holds whole tokens before anything reads it.
MappedFile open_token_file(const std::string& path, const DataConfig& config, std::size_t width) {
  MappedFile file = data_detail::open_data_file(path);
  if (file.size() % width != 0) {
    throw ConfigError("data.path: '" + path + "' is " + std::to_string(file.size()) +
                      " bytes, not a multiple of " + std::to_string(width) + " (data.token_dtype " +
                      config.token_dtype + "): truncated, or the wrong dtype");
  }
  return file;
}

class TokensSource final : public DataSource {
 public:
  TokensSource(const DataConfig& config, std::uint64_t seed, const std::string& path,
               std::size_t width)
      : width_(width),
        file_(open_token_file(path, config, width_)),
        dtype_(config.token_dtype),
        seq_len_(config.seq_len),
        eod_token_(config.eod_token),
        reset_positions_(config.reset_positions),
        sampler_(file_.size() / width_, config, seed, "tokens", path, "tokens") {
    const std::uint32_t max_id =
        width_ == 2 ? max_token<2>(file_.bytes()) : max_token<4>(file_.bytes());
    // Samples hold int32 ids.
    if (max_id > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max())) {
      throw ConfigError("data.path: '" + path + "' holds token id " + std::to_string(max_id) +
                        ", above the largest supported id " +
                        std::to_string(std::numeric_limits<std::int32_t>::max()));
    }
    min_vocab_ = std::int64_t{max_id} + 1;
  }

  Sample sample(Split split, std::uint64_t index) const override {
    const std::size_t start = sampler_.start(split, index);
    std::vector<std::int32_t> window(static_cast<std::size_t>(seq_len_ + 1));
    const auto bytes = file_.bytes().subspan(start * width_, window.size() * width_);
    if (width_ == 2) {
      load_tokens<2>(bytes, window);
    } else {
      load_tokens<4>(bytes, window);
    }
    return data_detail::sample_from_window(window, eod_token_, reset_positions_);
  }

  std::int64_t min_vocab() const override { return min_vocab_; }
  std::int64_t seq_len() const override { return seq_len_; }
  std::string describe() const override {
    std::string text = "tokens '" + file_.path() + "' (" + dtype_ +
                       "): " + std::to_string(file_.size() / width_) + " tokens (train " +
                       std::to_string(sampler_.region(Split::train).size) + ", eval " +
                       std::to_string(sampler_.region(Split::eval).size) + ")";
    if (eod_token_ >= 0) text += ", eod " + std::to_string(eod_token_);
    if (reset_positions_) text += ", positions reset per document";
    return text + ", seq " + std::to_string(seq_len_) + ", vocab " + std::to_string(min_vocab_);
  }

 private:
  std::size_t width_;
  MappedFile file_;
  std::string dtype_;
  std::int64_t seq_len_;
  std::int64_t eod_token_;
  bool reset_positions_;
  data_detail::WindowSampler sampler_;
  std::int64_t min_vocab_ = 0;
};

}  // namespace

std::unique_ptr<DataSource> make_tokens_source(const DataConfig& config, std::uint64_t seed,
                                               const std::string& path) {
  const std::size_t width = token_width(config.token_dtype);
  check_eod(config, width);
  return std::make_unique<TokensSource>(config, seed, path, width);
}

}  // namespace lt
