#include "trainer/memory_report.h"

#include <fmt/format.h>

#include "trainer/format.h"

namespace lt {
namespace {

std::string bytes_and_mib(std::int64_t bytes) {
  return fmt::format("{:>14} ({:>8.1f} MiB)", group_thousands(bytes),
                     static_cast<double>(bytes) / 1048576.0);
}

}  // namespace

std::string format_memory_report(const MemorySnapshot& mine, const MemorySnapshot& most,
                                 const MemoryPrediction& predicted, int rank, int ranks) {
  const bool many = ranks > 1;
  std::string out =
      fmt::format("memory after the first step, rank {} of {} (bytes):\n", rank, ranks);
  out += fmt::format("  {:<14} {:>29} {:>29} {:>29}", "category", "current", "peak in step",
                     "predicted peak");
  if (many) out += fmt::format(" {:>29}", "peak, max over ranks");
  auto row = [&](std::string_view name, std::int64_t current, std::int64_t peak,
                 std::int64_t predicted_peak, std::int64_t most_peak) {
    out += fmt::format("\n  {:<14} {} {} {}", name, bytes_and_mib(current), bytes_and_mib(peak),
                       bytes_and_mib(predicted_peak));
    if (many) out += fmt::format(" {}", bytes_and_mib(most_peak));
  };
  for (std::size_t c = 0; c < kNumMemCategories; ++c) {
    row(category_name(static_cast<MemCategory>(c)), mine.current[c], mine.peak[c],
        predicted.peak[c], most.peak[c]);
  }
  row("total", mine.current_total, mine.peak_total, predicted.total, most.peak_total);
  return out;
}

}  // namespace lt
