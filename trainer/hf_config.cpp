// HuggingFace config.json → ModelConfig. JSON is YAML, so yaml-cpp reads it; field names and
// defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "trainer/config.h"
#include "trainer/config_schema.h"

namespace lt {
namespace {

using schema::node_text;
using schema::parse_bool;
using schema::parse_float;
using schema::parse_int;

const std::vector<std::string> kSupportedTypes = {"llama", "mistral", "qwen2"};

std::string location(const std::string& path, const YAML::Mark& m) {
  if (m.is_null()) return path;
  return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string location(const std::string& path, const YAML::Node& node) {
  return location(path, node.Mark());
}

YAML::Node read_json(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError("cannot read HF config '" + path + "': it is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigError("cannot read HF config '" + path +
                      "': " + (err != 0 ? std::strerror(err) : "open failed"));
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    return YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    throw ConfigError(location(path, e.mark) + ": JSON syntax error: " + e.msg);
  }
}

// Typed reads of one config.json, with messages that name the file and the field.
class HfReader {
 public:
  HfReader(std::string path, YAML::Node root) : path_(std::move(path)), root_(std::move(root)) {}

  // JSON null counts as absent: HF writes e.g. "head_dim": null for "derive it".
  bool has(const std::string& field) const {
    const YAML::Node n = root_[field];
    return n.IsDefined() && !n.IsNull();
  }

  std::int64_t positive_int(const std::string& field) const {
    require(field);
    return positive_int_at(root_[field], field);
  }
  std::int64_t positive_int_or(const std::string& field, std::int64_t fallback) const {
    return has(field) ? positive_int_at(root_[field], field) : fallback;
  }
  double positive_float_or(const std::string& field, double fallback) const {
    return has(field) ? positive_float_at(root_[field], field) : fallback;
  }
  bool bool_or(const std::string& field, bool fallback) const {
    if (!has(field)) return fallback;
    const YAML::Node n = root_[field];
    const auto v = n.IsScalar() ? parse_bool(n.Scalar()) : std::nullopt;
    if (!v) fail(n, field, "true or false");
    return *v;
  }
  std::string string(const std::string& field) const {
    require(field);
    const YAML::Node n = root_[field];
    if (!n.IsScalar()) fail(n, field, "a string");
    return n.Scalar();
  }

  std::int64_t positive_int_at(const YAML::Node& n, const std::string& field) const {
    const auto v = n.IsScalar() ? parse_int(n.Scalar()) : std::nullopt;
    if (!v || *v < 1) fail(n, field, "a positive integer");
    return *v;
  }
  double positive_float_at(const YAML::Node& n, const std::string& field) const {
    const auto v = n.IsScalar() ? parse_float(n.Scalar()) : std::nullopt;
    if (!v || *v <= 0) fail(n, field, "a positive number");
    return *v;
  }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& field,
                         const std::string& expected) const {
    throw ConfigError(location(path_, n) + ": invalid value '" + node_text(n) + "' for field '" +
                      field + "': expected " + expected);
  }
  [[noreturn]] void unsupported(const YAML::Node& n, const std::string& what) const {
    throw ConfigError(location(path_, n) + ": " + what);
  }

  const YAML::Node& root() const { return root_; }
  const std::string& path() const { return path_; }

 private:
  void require(const std::string& field) const {
    if (!has(field)) {
      throw ConfigError(path_ + ": missing required field '" + field + "'");
    }
  }

  std::string path_;
  YAML::Node root_;
};

std::string supported_list() {
  std::string out;
  for (const auto& t : kSupportedTypes) out += (out.empty() ? "" : ", ") + t;
  return out;
}

std::string read_model_type(const HfReader& hf) {
  const std::string type = hf.string("model_type");
  if (std::find(kSupportedTypes.begin(), kSupportedTypes.end(), type) == kSupportedTypes.end()) {
    hf.unsupported(hf.root()["model_type"],
                   "model_type '" + type + "' is not supported; supported: " + supported_list());
  }
  return type;
}

// Our blocks have biases only on q, k, v (and only when qkv_bias is set), so a Llama with
// attention_bias (which also biases o_proj) or mlp_bias would be silently mis-shaped.
void reject_extra_biases(const HfReader& hf) {
  for (const std::string field : {"attention_bias", "mlp_bias"}) {
    if (hf.bool_or(field, false)) {
      hf.unsupported(hf.root()[field], "field '" + field + "': true is not supported");
    }
  }
}

// An optional positive field of the rope_scaling object, or the fallback when it is absent.
double rope_float_or(const HfReader& hf, const YAML::Node& n, const char* key, double fallback) {
  const YAML::Node v = n[key];
  if (!v.IsDefined() || v.IsNull()) return fallback;
  return hf.positive_float_at(v, std::string("rope_scaling.") + key);
}

// original_max_position_embeddings inside rope_scaling; HF's yarn falls back to the model's
// max_position_embeddings when it is absent.
std::int64_t rope_original_max(const HfReader& hf, const YAML::Node& n, std::int64_t fallback) {
  const char* key = "original_max_position_embeddings";
  if (n[key].IsDefined() && !n[key].IsNull()) {
    return hf.positive_int_at(n[key], std::string("rope_scaling.") + key);
  }
  return fallback;
}

// Types HF defines that longtrain cannot train with, each with what to do instead.
void reject_rope_type(const HfReader& hf, const YAML::Node& type_node, const std::string& type) {
  if (type == "dynamic") {
    hf.unsupported(type_node,
                   "rope_scaling type 'dynamic' (dynamic NTK) recomputes the frequencies from "
                   "each sequence's length at inference and has no fixed table to train with; "
                   "use model.rope_scaling.type: ntk (static NTK-aware) or yarn in the YAML "
                   "config instead");
  }
  if (type != "linear" && type != "llama3" && type != "yarn") {
    hf.unsupported(type_node, "rope_scaling type '" + type +
                                  "' is not supported; supported: linear, yarn, llama3");
  }
}

void read_yarn_fields(const HfReader& hf, const YAML::Node& n, RopeScaling& out) {
  if (n["mscale"].IsDefined() || n["mscale_all_dim"].IsDefined()) {
    hf.unsupported(n,
                   "rope_scaling: yarn with mscale / mscale_all_dim (DeepSeek's variant) is "
                   "not supported; give attention_factor instead");
  }
  out.original_max_position =
      rope_original_max(hf, n, hf.positive_int_or("max_position_embeddings", 2048));
  out.beta_fast = rope_float_or(hf, n, "beta_fast", out.beta_fast);
  out.beta_slow = rope_float_or(hf, n, "beta_slow", out.beta_slow);
  out.attention_factor = rope_float_or(hf, n, "attention_factor", 0.0);
}

RopeScaling read_rope_scaling(const HfReader& hf) {
  RopeScaling out;
  if (!hf.has("rope_scaling")) return out;
  const YAML::Node n = hf.root()["rope_scaling"];
  if (!n.IsMap()) hf.fail(n, "rope_scaling", "null or an object");
  // Newer files say rope_type, older ones type.
  const YAML::Node type_node = n["rope_type"].IsDefined() ? n["rope_type"] : n["type"];
  if (!type_node.IsDefined()) {
    throw ConfigError(hf.path() + ": missing required field 'rope_scaling.rope_type'");
  }
  if (!type_node.IsScalar()) {
    hf.fail(type_node, "rope_scaling.rope_type", "linear, yarn or llama3");
  }
  const std::string type = type_node.Scalar();
  if (type == "default") return out;  // HF's name for "no scaling"
  reject_rope_type(hf, type_node, type);
  out.type = type;
  if (!n["factor"].IsDefined()) {
    throw ConfigError(hf.path() + ": missing required field 'rope_scaling.factor'");
  }
  out.factor = hf.positive_float_at(n["factor"], "rope_scaling.factor");
  if (type == "llama3") {
    out.low_freq_factor = rope_float_or(hf, n, "low_freq_factor", out.low_freq_factor);
    out.high_freq_factor = rope_float_or(hf, n, "high_freq_factor", out.high_freq_factor);
    out.original_max_position = rope_original_max(hf, n, out.original_max_position);
  }
  if (type == "yarn") read_yarn_fields(hf, n, out);
  return out;
}

ModelConfig read_model(const HfReader& hf) {
  ModelConfig m;
  m.family = read_model_type(hf);
  reject_extra_biases(hf);
  m.dim = hf.positive_int("hidden_size");
  m.layers = hf.positive_int("num_hidden_layers");
  m.heads = hf.positive_int("num_attention_heads");
  m.kv_heads = hf.positive_int_or("num_key_value_heads", m.heads);  // absent: plain MHA
  m.head_dim = hf.positive_int_or("head_dim", 0);
  m.ffn = hf.positive_int("intermediate_size");
  m.vocab = hf.positive_int("vocab_size");
  m.rope_theta = hf.positive_float_or("rope_theta", 10000.0);
  // transformers defaults rms_norm_eps to 1e-6 for all three families; real files set it.
  m.norm_eps = hf.positive_float_or("rms_norm_eps", 1e-6);
  m.tie_embeddings = hf.bool_or("tie_word_embeddings", false);
  m.init_std = hf.positive_float_or("initializer_range", m.init_std);
  m.qkv_bias = m.family == "qwen2";  // Qwen2 always has q, k, v biases
  m.rope_scaling = read_rope_scaling(hf);
  return m;
}

}  // namespace

ModelConfig load_hf_model_config(const std::string& path) {
  try {
    const YAML::Node root = read_json(path);
    if (!root.IsMap()) {
      throw ConfigError(path + ": expected a JSON object at the top level, got '" +
                        node_text(root) + "'");
    }
    return read_model(HfReader(path, root));
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(path + ": " + e.what());
  }
}

}  // namespace lt
