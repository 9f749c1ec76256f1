// The one table of every config key: its path, type, range or allowed values, meaning, and
// where it lives in `Config`. Parsing, validation, --set overrides and the Markdown reference
// are all driven by it, so the documentation cannot drift from what the parser accepts.
// Internal to trainer/: callers use trainer/config.h.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "trainer/config.h"

namespace YAML {
class Node;
}

// Everything here lives in lt::schema: these are internals, and names like Range or
// parse_int must not collide with other parts of the framework linked into the same binary.
namespace lt::schema {

// Accessors into a Config, one alternative per storage type. Plain function pointers (built
// from `config_field<...>` below) keep the table a constant with no captured state.
template <class T>
using FieldRef = T& (*)(Config&);
using AnyField =
    std::variant<FieldRef<std::int64_t>, FieldRef<std::uint64_t>, FieldRef<double>, FieldRef<bool>,
                 FieldRef<std::string>, FieldRef<std::array<double, 2>>, FieldRef<PerLayerChoice>>;

// The member chain Config.*m1.*m2... as a function, so nested fields (model.rope_scaling.factor)
// are reachable through one function pointer.
// (clang-format would glue the fold below into an unreadable "c.*....*Members".)
// clang-format off
template <auto... Members>
decltype(auto) config_field(Config& c) {
  return (c .* ... .* Members);  // a fold: ((c.*m1).*m2)...
}
// clang-format on

// Allowed numeric interval; for a two-element list it applies to each element.
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  bool lo_open = false;
  double hi = std::numeric_limits<double>::infinity();
  bool hi_open = false;

  bool contains(double v) const;
  bool bounded() const;
};

Range at_least(double lo);
Range above(double lo);
Range closed(double lo, double hi);
Range half_open(double lo, double hi);      // [lo, hi)
Range open_interval(double lo, double hi);  // (lo, hi)

struct KeySpec {
  std::string path;  // "train.steps", "model.rope_scaling.factor", or "precision"
  AnyField field;
  std::string description;
  Range range = {};
  std::vector<std::string> choices = {};  // non-empty: an enum of these strings

  bool is_enum() const { return !choices.empty(); }
  // A PerLayerChoice: one value, or a list of one per layer (its length is a cross rule).
  bool is_per_layer() const { return std::holds_alternative<FieldRef<PerLayerChoice>>(field); }
};

struct SectionSpec {
  std::string name;
  std::string description;
};

// A broken rule between keys: the key to report, what it should have been, and a related key
// to point at when the reported one was left at its default.
struct Violation {
  std::string path;
  std::string expected;
  std::string related = {};
};

struct CrossRule {
  std::string doc;  // one line for the reference
  std::optional<Violation> (*check)(const Config&);
};

// Every key, in documentation order.
const std::vector<KeySpec>& keys();
// Top-level entries in documentation order (sections, and the scalar `precision`).
const std::vector<SectionSpec>& sections();
// Rules between keys, checked after every key is in range (so divisors are never zero).
const std::vector<CrossRule>& rules();
// The spec for an exact key path, or nullptr.
const KeySpec* find_key(std::string_view path);
// True when `path` is a map of keys ("model", "model.rope_scaling"); "" is the document root.
bool is_group(std::string_view path);
// The names directly under a group ("train" -> {"steps", ...}; "" -> {"model", ...}).
std::vector<std::string> group_children(std::string_view group);

// How a key is described to users.
// "int", "float", "enum", "[float, float]", "enum or per-layer list"...
std::string type_name(const KeySpec& spec);
std::string expected_text(const KeySpec& spec);  // "an integer >= 1", "one of bf16, fp32"
std::string allowed_text(const KeySpec& spec);   // ">= 1", "in [0, 1)", "bf16, fp32" or ""
std::string default_text(const KeySpec& spec);   // the value in a default-constructed Config
std::string current_text(const KeySpec& spec, Config& config);

// Stores `node` into the field; false when the node has the wrong shape or type (ranges and
// enum membership are checked later, by `satisfies`, once all sources have been applied).
bool assign(const KeySpec& spec, Config& config, const YAML::Node& node);
// Whether the field's current value is in range / one of the choices.
bool satisfies(const KeySpec& spec, Config& config);

// Strict scalar parsing shared with the HF reader. An int never accepts "2.5"; a float accepts
// "1" as well as "3e-4". Non-finite floats are rejected.
std::optional<std::int64_t> parse_int(std::string_view text);
std::optional<std::uint64_t> parse_uint(std::string_view text);
std::optional<double> parse_float(std::string_view text);
std::optional<bool> parse_bool(std::string_view text);

// Shortest text that reads back to the same double ("0.0003", "1e-05").
std::string format_number(double v);
// A node as it would appear in a flow-style YAML document, for messages ("[1, 2]", "many").
std::string node_text(const YAML::Node& node);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace lt::schema
