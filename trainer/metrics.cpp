#include "trainer/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace lt {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

JsonLine& JsonLine::add(const std::string& key, double value) {
  // JSON has no NaN or infinity; null keeps the line parseable.
  fields_.emplace_back(key, std::isfinite(value) ? fmt::format("{:.9g}", value) : "null");
  return *this;
}

JsonLine& JsonLine::add(const std::string& key, std::int64_t value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}

JsonLine& JsonLine::add(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, "\"" + json_escape(value) + "\"");
  return *this;
}

std::string JsonLine::str() const {
  std::string s = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (i) s += ", ";
    s += "\"" + json_escape(fields_[i].first) + "\": " + fields_[i].second;
  }
  return s + "}";
}

MetricsWriter::MetricsWriter(const std::string& path, bool append) {
  if (path.empty()) return;
  file_.reset(std::fopen(path.c_str(), append ? "a" : "w"));
  if (!file_)
    throw std::runtime_error("cannot write metrics file '" + path + "': " + std::strerror(errno));
}

void MetricsWriter::write(const JsonLine& line) {
  if (!file_) return;
  const std::string s = line.str() + "\n";
  std::fwrite(s.data(), 1, s.size(), file_.get());
  std::fflush(file_.get());
}

}  // namespace lt
