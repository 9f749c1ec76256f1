#include "checkpoint/json_reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "checkpoint/error.h"
#include "checkpoint/json_writer.h"

namespace lt::ckpt {
namespace {

// Checks `text` against the JSON grammar (RFC 8259) without building anything. Recursion is
// bounded by `max_depth`, so no input can exhaust the stack.
class SyntaxCheck {
 public:
  SyntaxCheck(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  // An empty string when `text` is one JSON value surrounded by whitespace, else the problem.
  std::string run() {
    skip_whitespace();
    if (!value(0)) return error_;
    skip_whitespace();
    if (pos_ != text_.size()) fail("the end of the text after the top-level value");
    return error_;
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  bool fail(std::string_view expected) {
    if (error_.empty())
      error_ = at_end() ? fmt::format("at byte {} (the end): expected {}", pos_, expected)
                        : fmt::format("at byte {}: expected {}", pos_, expected);
    return false;
  }

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
      ++pos_;
  }

  bool consume(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }

  bool value(int depth) {
    if (depth >= max_depth_) return fail(fmt::format("nesting of at most {} levels", max_depth_));
    switch (peek()) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  bool object(int depth) {
    ++pos_;  // '{'
    skip_whitespace();
    if (consume('}')) return true;
    do {
      skip_whitespace();
      if (peek() != '"' || at_end()) return fail("a string key");
      if (!string()) return false;
      skip_whitespace();
      if (!consume(':')) return fail("':'");
      skip_whitespace();
      if (!value(depth + 1)) return false;
      skip_whitespace();
    } while (consume(','));
    return consume('}') || fail("',' or '}'");
  }

  bool array(int depth) {
    ++pos_;  // '['
    skip_whitespace();
    if (consume(']')) return true;
    do {
      skip_whitespace();
      if (!value(depth + 1)) return false;
      skip_whitespace();
    } while (consume(','));
    return consume(']') || fail("',' or ']'");
  }

  bool string() {
    ++pos_;  // opening quote
    while (!at_end()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("no control character inside a string (escape it)");
      ++pos_;
      if (c == '\\' && !escape()) return false;
    }
    return fail("the closing '\"' of a string");
  }

  bool escape() {
    const char c = peek();
    if (!at_end() && std::string_view("\"\\/bfnrt").find(c) != std::string_view::npos) {
      ++pos_;
      return true;
    }
    if (!consume('u')) return fail("an escape: one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
    for (int i = 0; i < 4; ++i, ++pos_)
      if (at_end() || !std::isxdigit(static_cast<unsigned char>(peek())))
        return fail("four hexadecimal digits after \\u");
    return true;
  }

  bool digits() {
    const std::size_t start = pos_;
    while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    return pos_ > start;
  }

  bool number() {
    consume('-');
    if (!consume('0') && !(peek() >= '1' && peek() <= '9' && digits()))
      return fail("a value (object, array, string, number, true, false or null)");
    if (consume('.') && !digits()) return fail("digits after the decimal point");
    if (consume('e') || consume('E')) {
      if (!consume('+')) consume('-');
      if (!digits()) return fail("digits in the exponent");
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return fail(fmt::format("'{}'", word));
    pos_ += word.size();
    return true;
  }

  std::string_view text_;
  int max_depth_;
  std::size_t pos_ = 0;
  std::string error_;
};

bool is_identifier(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

JsonValue JsonValue::parse(std::string_view text, const std::string& source, int max_depth) {
  const std::string problem = SyntaxCheck(text, max_depth).run();
  if (!problem.empty())
    throw CheckpointError(fmt::format("{}: malformed JSON {}", source, problem));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw CheckpointError(fmt::format("{}: unreadable JSON: {}", source, e.what()));
  }
  return JsonValue(std::move(root), std::make_shared<const std::string>(source), "");
}

JsonValue::JsonValue(YAML::Node node, std::shared_ptr<const std::string> source, std::string path)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

std::string JsonValue::member_path(std::string_view key) const {
  if (!is_identifier(key)) return "[" + json_string(key) + "]";
  return path_.empty() ? std::string(key) : "." + std::string(key);
}

JsonValue JsonValue::child(YAML::Node node, std::string path_suffix) const {
  return JsonValue(std::move(node), source_, path_ + path_suffix);
}

std::string JsonValue::where() const {
  return fmt::format("{}: {}", *source_, path_.empty() ? "the top-level value" : path_);
}

void JsonValue::fail(std::string_view problem) const {
  throw CheckpointError(fmt::format("{}: {}", where(), problem));
}

// After the syntax check, a quoted scalar is a JSON string and a plain one a number or boolean.
bool JsonValue::is_string() const {
  return node_.IsScalar() && node_.Tag() == "!";
}

std::string JsonValue::describe() const {
  if (node_.IsMap()) return "an object";
  if (node_.IsSequence()) return "an array";
  if (!node_.IsScalar()) return "null";
  if (is_string()) return "a string";
  const std::string& s = node_.Scalar();
  if (s == "true" || s == "false") return "a boolean";
  return "the number " + s;
}

std::vector<std::string> JsonValue::keys() const {
  if (!is_object()) fail("expected an object, found " + describe());
  std::vector<std::string> out;
  std::set<std::string> seen;
  out.reserve(node_.size());
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    std::string key = it->first.Scalar();
    if (!seen.insert(key).second) fail(fmt::format("key {} appears twice", json_string(key)));
    out.push_back(std::move(key));
  }
  return out;
}

std::vector<std::pair<std::string, JsonValue>> JsonValue::members() const {
  std::vector<std::string> names = keys();  // in iteration order
  std::vector<std::pair<std::string, JsonValue>> out;
  out.reserve(names.size());
  auto it = node_.begin();
  for (std::string& key : names) {
    JsonValue value = child((it++)->second, member_path(key));
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

void JsonValue::expect_keys(std::initializer_list<std::string_view> allowed) const {
  for (const std::string& key : keys())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      fail(fmt::format("unexpected key {}; expected only {}", json_string(key),
                       fmt::join(allowed, ", ")));
}

std::optional<JsonValue> JsonValue::find(std::string_view key) const {
  if (!is_object()) fail("expected an object, found " + describe());
  // A direct scan: building every member for each lookup made large manifests parse twice as
  // slowly. Duplicate keys are the concern of members(), keys() and expect_keys().
  for (auto it = node_.begin(); it != node_.end(); ++it)
    if (it->first.Scalar() == key) return child(it->second, member_path(key));
  return std::nullopt;
}

JsonValue JsonValue::at(std::string_view key) const {
  std::optional<JsonValue> v = find(key);
  if (!v) fail(fmt::format("missing key {}", json_string(key)));
  return *std::move(v);
}

std::vector<JsonValue> JsonValue::items(std::size_t max_items) const {
  if (!is_array()) fail("expected an array, found " + describe());
  if (node_.size() > max_items)
    fail(fmt::format("expected at most {} elements, found {}", max_items, node_.size()));
  std::vector<JsonValue> out;
  out.reserve(node_.size());
  for (std::size_t i = 0; i < node_.size(); ++i)
    out.push_back(child(node_[i], fmt::format("[{}]", i)));
  return out;
}

std::string JsonValue::string(std::size_t max_bytes) const {
  if (!is_string()) fail("expected a string, found " + describe());
  const std::string& s = node_.Scalar();
  if (s.size() > max_bytes)
    fail(fmt::format("expected a string of at most {} bytes, found {} bytes", max_bytes, s.size()));
  return s;
}

std::string_view JsonValue::number_text(std::string_view expected) const {
  const bool number =
      node_.IsScalar() && !is_string() && node_.Scalar() != "true" && node_.Scalar() != "false";
  if (!number) fail(fmt::format("expected {}, found {}", expected, describe()));
  return node_.Scalar();
}

std::uint64_t JsonValue::uint64(std::uint64_t max) const {
  const std::string expected = fmt::format("an integer from 0 to {}", max);
  const std::string_view s = number_text(expected);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max)
    fail(fmt::format("expected {}, found {}", expected, s));
  return v;
}

std::int64_t JsonValue::int64() const {
  const std::string_view s = number_text("an integer");
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    fail(fmt::format("expected a 64-bit integer, found {}", s));
  return v;
}

double JsonValue::number() const {
  const std::string_view s = number_text("a number");
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    fail(fmt::format("expected a finite double, found {}", s));
  return v;
}

}  // namespace lt::ckpt
