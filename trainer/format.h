// Number formatting shared by the CLI, the trainer's log and the memory report.
#pragma once

#include <cstdint>
#include <string>

namespace lt {

// 6738415616 -> "6,738,415,616" (independent of the locale).
inline std::string group_thousands(std::int64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace lt
