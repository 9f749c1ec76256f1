// ModelConfig → HuggingFace config.json (the inverse of hf_config.cpp). Keys are written sorted
// and indented as transformers writes them, so an export diffs cleanly against a saved model.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "checkpoint/json_writer.h"
#include "layers/rope.h"
#include "trainer/hf_export.h"

namespace lt {
namespace {

using Members = std::map<std::string, std::string>;  // key -> JSON text of the value

// transformers checks some fields with isinstance(x, float) (rope_scaling.factor), so a
// whole-valued double keeps a decimal point.
std::string json_float(double value, std::string_view what) {
  std::string text = ckpt::json_double(value, what);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

std::string json_bool(bool value) {
  return value ? "true" : "false";
}

std::string json_object(const Members& members, int indent) {
  const std::string inner(static_cast<std::size_t>(indent + 2), ' ');
  std::string out = "{\n";
  for (auto it = members.begin(); it != members.end(); ++it) {
    out += inner + ckpt::json_string(it->first) + ": " + it->second;
    out += std::next(it) == members.end() ? "\n" : ",\n";
  }
  return out + std::string(static_cast<std::size_t>(indent), ' ') + "}";
}

// HF's rope_scaling object; "type" beside "rope_type" for transformers older than 4.45.
// Static NTK-aware scaling is only another base, which the export writes as rope_theta.
std::string rope_scaling_json(const RopeScaling& s) {
  if (s.type == "none" || s.type == "ntk") return "null";
  Members m{{"factor", json_float(s.factor, "rope_scaling.factor")},
            {"rope_type", ckpt::json_string(s.type)},
            {"type", ckpt::json_string(s.type)}};
  if (s.type == "llama3") {
    m["low_freq_factor"] = json_float(s.low_freq_factor, "rope_scaling.low_freq_factor");
    m["high_freq_factor"] = json_float(s.high_freq_factor, "rope_scaling.high_freq_factor");
    m["original_max_position_embeddings"] = std::to_string(s.original_max_position);
  }
  if (s.type == "yarn") {
    m["beta_fast"] = json_float(s.beta_fast, "rope_scaling.beta_fast");
    m["beta_slow"] = json_float(s.beta_slow, "rope_scaling.beta_slow");
    m["original_max_position_embeddings"] = std::to_string(s.original_max_position);
    if (s.attention_factor > 0.0) {
      m["attention_factor"] = json_float(s.attention_factor, "rope_scaling.attention_factor");
    }
  }
  return json_object(m, 2);
}

// The context the model serves: the training length, or the extended context llama3 scaling
// declares (Llama 3.1 says 131072 with factor 8 over 8192).
std::int64_t max_positions(const ModelConfig& m, std::int64_t seq_len) {
  const RopeScaling& s = m.rope_scaling;
  if (s.type != "llama3" && s.type != "yarn") return seq_len;
  const auto scaled = static_cast<std::int64_t>(
      std::llround(static_cast<double>(s.original_max_position) * s.factor));
  // transformers derives YaRN's factor as max_position_embeddings / original when the
  // original is given, so that ratio must be the factor exactly.
  if (s.type == "yarn") return scaled;
  return std::max(seq_len, scaled);
}

// What differs between the two architectures the export writes. transformers' Qwen2 always has
// q/k/v biases and no o_proj bias, which is exactly qkv_bias; Llama's attention_bias would also
// bias o_proj, which these models do not have.
void add_architecture(const ModelConfig& m, Members& out) {
  if (m.qkv_bias) {
    out["architectures"] = "[\"Qwen2ForCausalLM\"]";
    out["model_type"] = "\"qwen2\"";
    out["use_sliding_window"] = "false";
    return;
  }
  out["architectures"] = "[\"LlamaForCausalLM\"]";
  out["model_type"] = "\"llama\"";
  out["attention_bias"] = "false";
  out["mlp_bias"] = "false";
}

}  // namespace

std::string hf_config_json(const ModelConfig& m, std::int64_t seq_len, ckpt::TensorDtype dtype) {
  Members out{
      {"attention_dropout", "0.0"},
      {"head_dim", std::to_string(m.resolved_head_dim())},
      {"hidden_act", "\"silu\""},
      {"hidden_size", std::to_string(m.dim)},
      {"initializer_range", json_float(m.init_std, "model.init_std")},
      {"intermediate_size", std::to_string(m.ffn)},
      {"max_position_embeddings", std::to_string(max_positions(m, seq_len))},
      {"num_attention_heads", std::to_string(m.heads)},
      {"num_hidden_layers", std::to_string(m.layers)},
      {"num_key_value_heads", std::to_string(m.kv_heads)},
      {"rms_norm_eps", json_float(m.norm_eps, "model.norm_eps")},
      {"rope_scaling", rope_scaling_json(m.rope_scaling)},
      {"rope_theta", json_float(rope_base(m), "model.rope_theta")},
      {"tie_word_embeddings", json_bool(m.tie_embeddings)},
      {"torch_dtype", dtype == ckpt::TensorDtype::bf16 ? "\"bfloat16\"" : "\"float32\""},
      {"use_cache", "true"},
      {"vocab_size", std::to_string(m.vocab)},
  };
  add_architecture(m, out);
  return json_object(out, 0) + "\n";
}

}  // namespace lt
