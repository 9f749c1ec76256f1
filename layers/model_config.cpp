#include "layers/model_config.h"

namespace lt {

std::int64_t count_block_parameters(const ModelConfig& m) {
  const std::int64_t norms = 2 * m.dim;
  const std::int64_t qkv = m.dim * (m.q_size() + 2 * m.kv_size());
  const std::int64_t qkv_bias = m.qkv_bias ? m.q_size() + 2 * m.kv_size() : 0;
  const std::int64_t out = m.q_size() * m.dim;
  const std::int64_t mlp = 3 * m.dim * m.ffn;  // gate, up, down
  return norms + qkv + qkv_bias + out + mlp;
}

std::int64_t count_parameters(const ModelConfig& m) {
  const std::int64_t embedding = m.vocab * m.dim;
  const std::int64_t head = m.tie_embeddings ? 0 : m.vocab * m.dim;
  return embedding + m.layers * count_block_parameters(m) + m.dim + head;
}

}  // namespace lt
