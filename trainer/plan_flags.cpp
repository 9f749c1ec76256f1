#include "trainer/plan_flags.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "trainer/byte_size.h"
#include "trainer/config_schema.h"

namespace lt {

std::string plan_flags_usage() {
  const PlanSettings d;
  const ClusterSpec& k = d.cluster;
  return fmt::format(
      "        --nodes N ({})  --gpus-per-node G ({})  --gpu-mem SIZE ({}GiB)\n"
      "        --tflops T: sustained per GPU ({:g})  --peak-tflops P: for MFU ({:g})\n"
      "        --intra-gbps B ({:g}) / --inter-gbps B ({:g}): GB/s per GPU inside / between nodes\n"
      "        --intra-latency-us L ({:g}) / --inter-latency-us L ({:g}), --latency-us L: both\n"
      "        --margin F: fraction of memory kept free ({:g})  --top K: runners-up listed ({})\n",
      k.nodes, k.devices_per_node, k.memory_bytes / kGiB, k.sustained_tflops, k.peak_tflops,
      k.intra.gb_per_s, k.inter.gb_per_s, k.intra.latency_us, k.inter.latency_us, d.margin, d.top);
}

namespace {

[[noreturn]] void bad(std::string_view flag, std::string_view value, std::string_view expected) {
  throw std::invalid_argument(
      fmt::format("invalid value '{}' for {}: expected {}", value, flag, expected));
}

std::int64_t positive_int(std::string_view flag, std::string_view value) {
  const std::optional<std::int64_t> v = schema::parse_int(value);
  if (!v || *v < 1) bad(flag, value, "a whole number >= 1");
  return *v;
}

double positive_number(std::string_view flag, std::string_view value) {
  const std::optional<double> v = schema::parse_float(value);
  if (!v || *v <= 0) bad(flag, value, "a number > 0");
  return *v;
}

using Setter = std::function<void(PlanSettings&, std::string_view, std::string_view)>;

const std::array<std::pair<std::string_view, Setter>, 12>& setters() {
  using S = PlanSettings;
  using V = std::string_view;
  static const std::array<std::pair<std::string_view, Setter>, 12> table = {{
      {"--nodes", [](S& s, V f, V v) { s.cluster.nodes = positive_int(f, v); }},
      {"--gpus-per-node", [](S& s, V f, V v) { s.cluster.devices_per_node = positive_int(f, v); }},
      {"--gpu-mem",
       [](S& s, V f, V v) {
         const std::optional<std::int64_t> bytes = parse_byte_size(v);
         if (!bytes || *bytes == 0) bad(f, v, kByteSizeHelp);
         s.cluster.memory_bytes = *bytes;
       }},
      {"--tflops", [](S& s, V f, V v) { s.cluster.sustained_tflops = positive_number(f, v); }},
      {"--peak-tflops", [](S& s, V f, V v) { s.cluster.peak_tflops = positive_number(f, v); }},
      {"--intra-gbps", [](S& s, V f, V v) { s.cluster.intra.gb_per_s = positive_number(f, v); }},
      {"--inter-gbps", [](S& s, V f, V v) { s.cluster.inter.gb_per_s = positive_number(f, v); }},
      {"--intra-latency-us",
       [](S& s, V f, V v) { s.cluster.intra.latency_us = positive_number(f, v); }},
      {"--inter-latency-us",
       [](S& s, V f, V v) { s.cluster.inter.latency_us = positive_number(f, v); }},
      {"--latency-us",
       [](S& s, V f, V v) {
         s.cluster.intra.latency_us = s.cluster.inter.latency_us = positive_number(f, v);
       }},
      {"--margin",
       [](S& s, V f, V v) {
         const std::optional<double> m = schema::parse_float(v);
         if (!m || *m < 0 || *m >= 1) bad(f, v, "a fraction in [0, 1), e.g. 0.1");
         s.margin = *m;
       }},
      {"--top",
       [](S& s, V f, V v) {
         const std::optional<std::int64_t> k = schema::parse_int(v);
         if (!k || *k < 0) bad(f, v, "a whole number >= 0");
         s.top = static_cast<std::size_t>(*k);
       }},
  }};
  return table;
}

}  // namespace

bool is_plan_flag(std::string_view flag) {
  const auto& table = setters();
  return std::any_of(table.begin(), table.end(), [&](const auto& e) { return e.first == flag; });
}

void apply_plan_flag(PlanSettings& settings, std::string_view flag, std::string_view value) {
  for (const auto& [name, set] : setters()) {
    if (name == flag) return set(settings, flag, value);
  }
  throw std::invalid_argument(fmt::format("unknown option '{}' for 'plan'", flag));
}

}  // namespace lt
