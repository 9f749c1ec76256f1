#include "trainer/byte_size.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <utility>

#include "trainer/cluster.h"
#include "trainer/config_schema.h"
#include "trainer/format.h"

namespace lt {
namespace {

std::optional<double> unit_factor(std::string unit) {
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::array<std::pair<const char*, double>, 9> units = {{
      {"b", 1.0},
      {"kb", 1e3},
      {"mb", 1e6},
      {"gb", 1e9},
      {"tb", 1e12},
      {"kib", 1024.0},
      {"mib", 1024.0 * 1024.0},
      {"gib", 1024.0 * 1024.0 * 1024.0},
      {"tib", 1024.0 * 1024.0 * 1024.0 * 1024.0},
  }};
  for (const auto& [name, factor] : units) {
    if (unit == name) return factor;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::int64_t> parse_byte_size(std::string_view text) {
  const auto unit_at = text.find_first_not_of("0123456789.+-eE");
  if (unit_at == std::string_view::npos) {  // bytes: a whole number
    const std::optional<std::int64_t> bytes = schema::parse_int(text);
    return bytes && *bytes >= 0 ? bytes : std::nullopt;
  }
  std::string_view unit = text.substr(unit_at);
  while (unit.starts_with(' ')) unit.remove_prefix(1);
  const std::optional<double> number = schema::parse_float(text.substr(0, unit_at));
  const std::optional<double> factor = unit_factor(std::string(unit));
  if (!number || !factor || *number < 0) return std::nullopt;
  const double bytes = std::floor(*number * *factor);
  if (bytes >= 9.2e18) return std::nullopt;
  return static_cast<std::int64_t>(bytes);
}

std::string format_size(std::int64_t bytes) {
  const auto b = static_cast<double>(bytes);
  if (std::abs(b) >= static_cast<double>(kGiB)) {
    return fmt::format("{:.2f} GiB", b / static_cast<double>(kGiB));
  }
  if (std::abs(b) >= 1048576.0) return fmt::format("{:.1f} MiB", b / 1048576.0);
  return group_thousands(bytes) + " bytes";
}

}  // namespace lt
