// Reading JSON that may be hostile (internal to the checkpoint module). The text is first
// checked against the JSON grammar by a small non-allocating scanner with a nesting limit, so
// that yaml-cpp, which builds the tree, only ever sees strict JSON: no YAML aliases, tags,
// comments, trailing commas or unbounded recursion. JsonValue then gives type-checked access in
// which every error names the source file and the path of the offending value
// ("manifest.json: tensors[3].shards[0].offsets: expected an array, found a string").
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lt::ckpt {

class JsonValue {
 public:
  // Parses `text` (named `source` in errors). Throws CheckpointError on malformed JSON or
  // nesting deeper than `max_depth`.
  static JsonValue parse(std::string_view text, const std::string& source, int max_depth = 32);

  // "source: path" for messages.
  std::string where() const;
  [[noreturn]] void fail(std::string_view problem) const;

  bool is_object() const { return node_.IsMap(); }
  bool is_array() const { return node_.IsSequence(); }
  bool is_string() const;

  // An object's members in file order; duplicate keys are an error.
  std::vector<std::pair<std::string, JsonValue>> members() const;
  // Checks that this is an object holding no key outside `allowed` and no key twice.
  void expect_keys(std::initializer_list<std::string_view> allowed) const;
  // The member `key`; missing is an error.
  JsonValue at(std::string_view key) const;
  std::optional<JsonValue> find(std::string_view key) const;

  // An array's elements; more than `max_items` is an error.
  std::vector<JsonValue> items(std::size_t max_items) const;
  std::string string(std::size_t max_bytes) const;
  // Integers written without sign, fraction or exponent, up to `max`.
  std::uint64_t uint64(std::uint64_t max = UINT64_MAX) const;
  std::int64_t int64() const;
  double number() const;

 private:
  JsonValue(YAML::Node node, std::shared_ptr<const std::string> source, std::string path);
  JsonValue child(YAML::Node node, std::string path_suffix) const;
  std::string member_path(std::string_view key) const;  // ".key" or ["key"], for messages
  std::vector<std::string> keys() const;                // an object's keys; duplicates throw
  std::string describe() const;                         // "a string", "an object", ... for messages
  std::string_view number_text(std::string_view expected) const;

  YAML::Node node_;
  std::shared_ptr<const std::string> source_;
  std::string path_;
};

}  // namespace lt::ckpt
