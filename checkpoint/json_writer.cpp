#include "checkpoint/json_writer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "checkpoint/error.h"

namespace lt::ckpt {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  out.reserve(s.size() + 2);
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string json_uint_array(std::span<const std::uint64_t> values) {
  return fmt::format("[{}]", fmt::join(values, ","));
}

std::string json_double(double value, std::string_view what) {
  if (!std::isfinite(value))
    throw CheckpointError(
        fmt::format("{}: {} is not a finite number; JSON cannot hold it", what, value));
  return fmt::format("{}", value);
}

}  // namespace lt::ckpt
