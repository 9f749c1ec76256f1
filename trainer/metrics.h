// metrics.jsonl: one JSON object per line, written and flushed as each step finishes, so a
// crashed run keeps every line it logged.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lt {

// One JSON object built field by field (numbers and strings only: all that metrics need).
class JsonLine {
 public:
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, std::int64_t value);
  JsonLine& add(const std::string& key, const std::string& value);
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

class MetricsWriter {
 public:
  // Opens path, truncating it unless `append` (a resumed run continues the file); an empty path
  // writes nothing.
  explicit MetricsWriter(const std::string& path, bool append = false);
  void write(const JsonLine& line);

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file_;
};

std::string json_escape(const std::string& s);

}  // namespace lt
