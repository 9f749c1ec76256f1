// Reading a config: the YAML document and the --set overrides are merged into one tree first
// (so an override is checked exactly like a key in the file), then the tree is walked against
// the schema, then every value and every cross-field rule is validated on the final Config.
// Each value remembers where it came from, so every error can point at file:line:column or at
// the --set that produced it.
#include "trainer/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "trainer/config_schema.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using schema::allowed_text;
using schema::assign;
using schema::CrossRule;
using schema::current_text;
using schema::default_text;
using schema::edit_distance;
using schema::expected_text;
using schema::find_key;
using schema::group_children;
using schema::is_group;
using schema::KeySpec;
using schema::node_text;
using schema::satisfies;
using schema::SectionSpec;
using schema::type_name;
using schema::Violation;

// Where a value was set: "cfg.yaml:3:10", "cfg.yaml: --set train.steps=5", ... and the text
// the user wrote for it (empty when it did not come from YAML text).
struct Provenance {
  std::string where;
  std::string raw;
};

std::string mark_suffix(const YAML::Mark& mark) {
  if (mark.is_null()) return "";
  return ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The closest valid name, if it is close enough to be a plausible typo.
std::optional<std::string> nearest(const std::string& name, const std::vector<std::string>& valid) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 2) + 1;
  for (const auto& candidate : valid) {
    const std::size_t d = edit_distance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::string join_path(const std::string& group, const std::string& name) {
  return group.empty() ? name : group + "." + name;
}

// True when `line` starts with a YAML document marker ("---" or "...") at column 0.
bool is_marker(const std::string& line, const char* marker) {
  return line.starts_with(marker) &&
         (line.size() == 3 || std::isspace(static_cast<unsigned char>(line[3])));
}

// The 1-based line where a second document starts, or 0. Checked on the text because
// YAML::Load silently drops later documents and YAML::LoadAll can loop forever on some
// malformed input (e.g. ","). Markers at column 0 always delimit documents in YAML.
int second_document_line(const std::string& text) {
  std::istringstream lines(text);
  bool seen_content = false;
  bool ended = false;  // a "..." closed the first document
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    const bool start = is_marker(line, "---");
    if (start && seen_content) return number;
    if (is_marker(line, "...")) {
      ended = seen_content;
      continue;
    }
    const auto first = line.find_first_not_of(" \t\r");
    const bool blank = first == std::string::npos || line[first] == '#';
    if (start || blank || line[0] == '%') continue;
    if (ended) return number;
    seen_content = true;
  }
  return 0;
}

YAML::Node parse_yaml(const std::string& text, const std::string& where) {
  if (const int line = second_document_line(text)) {
    throw ConfigError(where + ":" + std::to_string(line) +
                      ":1: expected a single YAML document, but '---' starts another");
  }
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(where + mark_suffix(e.mark) + ": YAML syntax error: " + e.msg);
  }
}

// Reads the merged tree into a Config, remembering provenance, then validates it.
class Reader {
 public:
  Reader(std::string origin, std::map<std::string, std::string> override_at)
      : origin_(std::move(origin)), override_at_(std::move(override_at)) {
    config_.source_file = origin_;
  }

  Config read(const YAML::Node& root) {
    if (!root.IsNull() && !root.IsMap()) {
      throw ConfigError(origin_ + mark_suffix(root.Mark()) +
                        ": expected a map of sections (model, data, train, ...) at the top "
                        "level, got '" +
                        node_text(root) + "'");
    }
    if (root.IsMap()) {
      read_hf_config(root["model"]);
      read_group("", root);
    }
    validate_keys();
    validate_rules();
    return config_;
  }

 private:
  // ---- locations ----

  // Overrides are looked up by path (an override can create a whole subtree); everything else
  // carries the line and column yaml-cpp recorded.
  std::string where(const std::string& path, const YAML::Node& node) const {
    for (std::string p = path;; p = p.substr(0, p.rfind('.'))) {
      if (auto it = override_at_.find(p); it != override_at_.end()) {
        return origin_ + ": " + it->second;
      }
      if (p.find('.') == std::string::npos) break;
    }
    return origin_ + mark_suffix(node.Mark());
  }

  std::string where_set(const std::string& path) const {
    auto it = provenance_.find(path);
    return it == provenance_.end() ? origin_ : it->second.where;
  }

  // ---- model.hf_config, applied before the other model keys so they override it ----

  void read_hf_config(const YAML::Node& model) {
    // A missing key reads as an invalid node, which throws on anything but IsDefined().
    if (!model.IsDefined() || !model.IsMap()) return;
    const YAML::Node node = model["hf_config"];
    if (!node.IsDefined()) return;
    const std::string path = "model.hf_config";
    const std::string at = where(path, node);
    if (!node.IsScalar() || node.Scalar().empty()) {
      throw ConfigError(at + ": invalid value '" + node_text(node) + "' for " + path +
                        ": expected the path of a HuggingFace config.json");
    }
    const std::string resolved = resolve(node.Scalar());
    try {
      config_.model = load_hf_model_config(resolved);
    } catch (const ConfigError& e) {
      throw ConfigError(at + ": " + path + " '" + node.Scalar() + "' (resolved to '" + resolved +
                        "'): " + e.what());
    }
    config_.model_hf_config = resolved;
    // Until a YAML key overrides them, model values are blamed on the HF file.
    for (const KeySpec& spec : schema::keys()) {
      if (spec.path.starts_with("model.")) {
        provenance_[spec.path] = {at + ": from " + path + " '" + resolved + "'", ""};
      }
    }
    provenance_[path] = {at, node.Scalar()};
  }

  // Relative to the directory of the config file, so a config and its config.json can move
  // together; absolute so the stored path means the same thing from any working directory.
  std::string resolve(const std::string& path) const {
    fs::path p(path);
    if (p.is_relative()) p = fs::path(origin_).parent_path() / p;
    return fs::absolute(p).lexically_normal().string();
  }

  // ---- walking the tree ----

  void read_group(const std::string& group, const YAML::Node& map) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      const YAML::Node& value = entry.second;
      if (!key.IsScalar()) {
        throw ConfigError(where(group, key) + ": keys must be plain names, got '" + node_text(key) +
                          "'" + (group.empty() ? "" : " in " + group));
      }
      const std::string path = join_path(group, key.Scalar());
      if (!seen.emplace(key.Scalar(), key.Mark()).second) {
        throw ConfigError(where(path, key) + ": duplicate key '" + path + "' (first set at line " +
                          std::to_string(seen[key.Scalar()].line + 1) + ")");
      }
      read_entry(group, path, key, value);
    }
  }

  void read_entry(const std::string& group, const std::string& path, const YAML::Node& key,
                  const YAML::Node& value) {
    if (path == "model.hf_config") return;  // applied first, by read_hf_config
    if (const KeySpec* spec = find_key(path)) return read_leaf(*spec, value);
    if (is_group(path)) return read_subgroup(path, value);
    unknown_key(group, path, key);
  }

  void read_subgroup(const std::string& path, const YAML::Node& value) {
    if (value.IsMap()) return read_group(path, value);
    // An empty section ("train:") means all defaults; rope_scaling: null means no scaling,
    // which lets a config switch off the scaling an HF file asked for.
    if (value.IsNull()) {
      if (path == "model.rope_scaling") config_.model.rope_scaling = RopeScaling{};
      return;
    }
    // Show a typical key as the example; hf_config's empty default would say little.
    std::string first = group_children(path).front();
    if (first == "hf_config") first = group_children(path)[1];
    const KeySpec& example = *find_key(path + "." + first);
    throw ConfigError(where(path, value) + ": invalid value '" + node_text(value) + "' for " +
                      path + ": expected a map of " + path + " keys, e.g. '" + path + ": {" +
                      first + ": " + default_text(example) + "}'");
  }

  void read_leaf(const KeySpec& spec, const YAML::Node& value) {
    const std::string at = where(spec.path, value);
    if (!value.IsDefined() || value.IsNull()) {
      throw ConfigError(at + ": missing value for " + spec.path + ": expected " +
                        expected_text(spec));
    }
    if (!assign(spec, config_, value)) {
      throw ConfigError(at + ": invalid value '" + node_text(value) + "' for " + spec.path +
                        ": expected " + expected_text(spec));
    }
    provenance_[spec.path] = {at, node_text(value)};
  }

  [[noreturn]] void unknown_key(const std::string& group, const std::string& path,
                                const YAML::Node& key) const {
    const std::vector<std::string> valid = group_children(group);
    const std::string what = group.empty() ? "section" : "key";
    std::string message = where(path, key) + ": unknown " + what + " '" + path + "'";
    const std::string prefix = group.empty() ? "" : group + ".";
    if (auto guess = nearest(key.Scalar(), valid)) {
      message += "; did you mean '" + prefix + *guess + "'?";
    } else {
      message +=
          "; valid " + (group.empty() ? "sections" : "keys in " + group) + ": " + join(valid);
    }
    throw ConfigError(message);
  }

  // ---- validation ----

  std::string shown_value(const KeySpec& spec) {
    auto it = provenance_.find(spec.path);
    if (it != provenance_.end() && !it->second.raw.empty()) return it->second.raw;
    return current_text(spec, config_);
  }

  void validate_keys() {
    for (const KeySpec& spec : schema::keys()) {
      if (satisfies(spec, config_)) continue;
      throw ConfigError(where_set(spec.path) + ": invalid value '" + shown_value(spec) + "' for " +
                        spec.path + ": expected " + expected_text(spec));
    }
  }

  // A rule between keys blames one key; its location is where that key was set or, when it
  // kept its default, where the related key was.
  void validate_rules() {
    for (const CrossRule& rule : schema::rules()) {
      const std::optional<Violation> v = rule.check(config_);
      if (!v) continue;
      const bool blamed_was_set = provenance_.contains(v->path);
      const std::string at =
          blamed_was_set || v->related.empty() ? where_set(v->path) : where_set(v->related);
      const std::string shown = shown_value(*find_key(v->path));
      const std::string what =
          shown.empty() ? "missing value for " : "invalid value '" + shown + "' for ";
      throw ConfigError(at + ": " + what + v->path + ": expected " + v->expected);
    }
  }

  Config config_;
  std::string origin_;
  std::map<std::string, std::string> override_at_;
  std::map<std::string, Provenance> provenance_;
};

// ---- --set overrides, merged into the document tree ----

struct Override {
  std::vector<std::string> parts;  // "model.rope_scaling.factor" split at '.'
  YAML::Node value;
  std::string text;  // "--set model.rope_scaling.factor=8"
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

Override parse_override(const std::string& origin, const std::string& spec) {
  const std::string text = "--set " + spec;
  const auto eq = spec.find('=');
  const std::string key = trim(spec.substr(0, eq));
  if (eq == std::string::npos || key.empty()) {
    throw ConfigError(origin + ": malformed override '" + spec +
                      "': expected section.key=value, e.g. --set train.steps=100");
  }
  Override o{{}, parse_yaml(spec.substr(eq + 1), origin + ": " + text), text};
  std::stringstream parts(key);
  for (std::string part; std::getline(parts, part, '.');) {
    if (part.empty()) {
      throw ConfigError(origin + ": malformed override '" + spec + "': empty name in key '" + key +
                        "'");
    }
    o.parts.push_back(part);
  }
  return o;
}

// Writes o.value at o.parts inside `node`, creating maps on the way. Records the override as
// the origin of every path it touched, so messages can cite it.
void apply_override(YAML::Node node, const Override& o, std::size_t depth,
                    const std::string& prefix, const std::string& origin,
                    std::map<std::string, std::string>& override_at) {
  const std::string& name = o.parts[depth];
  const std::string path = join_path(prefix, name);
  if (depth + 1 == o.parts.size()) {
    node[name] = o.value;
    override_at[path] = o.text;
    return;
  }
  YAML::Node child = node[name];
  if (!child.IsDefined() || child.IsNull()) {
    node[name] = YAML::Node(YAML::NodeType::Map);
    override_at[path] = o.text;
  } else if (!child.IsMap()) {
    throw ConfigError(origin + ": " + o.text + ": cannot set a key inside '" + path +
                      "', which is '" + node_text(child) + "' rather than a map");
  }
  apply_override(node[name], o, depth + 1, path, origin, override_at);
}

Config parse_checked(const std::string& yaml_text, const std::string& origin,
                     const std::vector<std::string>& overrides) {
  YAML::Node root = parse_yaml(yaml_text, origin);
  std::map<std::string, std::string> override_at;
  for (const std::string& spec : overrides) {
    const Override o = parse_override(origin, spec);
    if (!root.IsMap()) {
      if (!root.IsNull()) break;  // the reader reports the malformed document
      root = YAML::Node(YAML::NodeType::Map);
    }
    apply_override(root, o, 0, "", origin, override_at);
  }
  return Reader(origin, std::move(override_at)).read(root);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides) {
  // Whatever slips past the checks above (a yaml-cpp corner, a filesystem error) still
  // reaches the user as a ConfigError naming the file, never as a crash.
  try {
    return parse_checked(yaml_text, origin, overrides);
  } catch (const ConfigError&) {
    throw;
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + mark_suffix(e.mark) + ": " + e.msg);
  } catch (const std::exception& e) {
    throw ConfigError(origin + ": " + e.what());
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError("cannot read config file '" + path + "': it is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigError("cannot read config file '" + path +
                      "': " + (err != 0 ? std::strerror(err) : "open failed"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

namespace {

// One table row: the key relative to its section ("rope_scaling.factor"), "int >= 1" or
// "enum: bf16, fp32", the default, the meaning.
std::string markdown_row(const KeySpec& spec, const std::string& section) {
  const std::string key = spec.path == section ? spec.path : spec.path.substr(section.size() + 1);
  const std::string allowed = allowed_text(spec);
  const std::string type =
      type_name(spec) + (allowed.empty() ? "" : (spec.is_enum() ? ": " : " ") + allowed);
  return "| `" + key + "` | " + type + " | `" + default_text(spec) + "` | " + spec.description +
         " |\n";
}

}  // namespace

std::string config_reference_markdown() {
  std::string out =
      "# Config reference\n\nEvery key of the YAML config, generated from the schema the "
      "parser uses. Missing keys take the default; `--set section.key=value` overrides any "
      "key after the file is read.\n";
  for (const SectionSpec& section : schema::sections()) {
    out += "\n## `" + section.name + "`\n\n" + section.description + ".\n\n";
    out += "| key | type | default | meaning |\n|---|---|---|---|\n";
    for (const KeySpec& spec : schema::keys()) {
      if (spec.path == section.name || spec.path.starts_with(section.name + ".")) {
        out += markdown_row(spec, section.name);
      }
    }
  }
  out += "\n## Rules across keys\n\n";
  for (const CrossRule& rule : schema::rules()) out += "- " + rule.doc + "\n";
  return out;
}

}  // namespace lt
