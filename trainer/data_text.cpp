#include "trainer/data_text.h"

#include <algorithm>
#include <vector>

#include "trainer/data_common.h"
#include "trainer/mapped_file.h"

namespace lt {
namespace {

class TextSource final : public DataSource {
 public:
  TextSource(const DataConfig& config, std::uint64_t seed, const std::string& path)
      : file_(data_detail::open_data_file(path)),
        seq_len_(config.seq_len),
        sampler_(file_.size(), config, seed, "text", path, "bytes") {}

  Sample sample(Split split, std::uint64_t index) const override {
    const auto bytes =
        file_.bytes().subspan(sampler_.start(split, index), static_cast<std::size_t>(seq_len_ + 1));
    std::vector<std::int32_t> window(bytes.size());
    std::transform(bytes.begin(), bytes.end(), window.begin(),
                   [](std::byte b) { return std::to_integer<std::int32_t>(b); });
    return data_detail::sample_from_window(window, -1, false);
  }

  std::int64_t min_vocab() const override { return 256; }
  std::int64_t seq_len() const override { return seq_len_; }
  std::string describe() const override {
    return "text '" + file_.path() + "': " + std::to_string(file_.size()) + " bytes (train " +
           std::to_string(sampler_.region(Split::train).size) + ", eval " +
           std::to_string(sampler_.region(Split::eval).size) + "), seq " +
           std::to_string(seq_len_) + ", vocab 256";
  }

 private:
  MappedFile file_;
  std::int64_t seq_len_;
  data_detail::WindowSampler sampler_;
};

}  // namespace

std::unique_ptr<DataSource> make_text_source(const DataConfig& config, std::uint64_t seed,
                                             const std::string& path) {
  return std::make_unique<TextSource>(config, seed, path);
}

}  // namespace lt
