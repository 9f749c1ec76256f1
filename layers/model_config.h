// The shape of a Llama-family decoder: what the layers are built from and what the parameter
// count is derived from.
#pragma once

#include <cstdint>
#include <string>

namespace lt {

struct RopeScaling {
  std::string type = "none";  // none | linear | ntk | yarn | llama3
  double factor = 1.0;
  // Llama-3 style frequency-dependent scaling.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn: the context the model was pretrained with.
  std::int64_t original_max_position = 8192;
  // YaRN: the ramp between extrapolated and interpolated dimensions, in rotations over
  // original_max_position, and the attention temperature on cos/sin (0: 0.1 ln(factor) + 1).
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double attention_factor = 0.0;
};

struct ModelConfig {
  std::string family = "llama";  // llama | mistral | qwen2 (informational; see qkv_bias)
  std::int64_t dim = 256;
  std::int64_t layers = 4;
  std::int64_t heads = 8;
  std::int64_t kv_heads = 4;
  std::int64_t head_dim = 0;  // 0: dim / heads
  std::int64_t ffn = 688;
  std::int64_t vocab = 256;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  bool qkv_bias = false;
  double init_std = 0.02;

  std::int64_t resolved_head_dim() const { return head_dim > 0 ? head_dim : dim / heads; }
  std::int64_t q_size() const { return heads * resolved_head_dim(); }
  std::int64_t kv_size() const { return kv_heads * resolved_head_dim(); }
};

// This rank's place in the tensor-parallel group.
struct TensorParallelShard {
  std::int64_t size = 1;
  std::int64_t rank = 0;
};

// The model one tensor-parallel rank holds: heads, KV heads and the FFN divided by tp, the
// vocabulary padded to a multiple of tp and divided (head_dim made explicit). Throws lt::Error
// when a dimension does not divide.
ModelConfig local_model_config(const ModelConfig& m, const TensorParallelShard& tp);
// Vocabulary rows per tensor-parallel rank: ceil(vocab / tp).
std::int64_t vocab_rows_per_rank(const ModelConfig& m, const TensorParallelShard& tp);

// Exact parameter count of the model (embedding, blocks, final norm, head unless tied).
std::int64_t count_parameters(const ModelConfig& m);
std::int64_t count_block_parameters(const ModelConfig& m);

}  // namespace lt
