#include "layers/model_config.h"

#include <algorithm>

#include "core/error.h"

namespace lt {

std::int64_t vocab_rows_per_rank(const ModelConfig& m, const TensorParallelShard& tp) {
  return (m.vocab + tp.size - 1) / tp.size;
}

ModelConfig local_model_config(const ModelConfig& m, const TensorParallelShard& tp) {
  LT_CHECK(m.heads % tp.size == 0 && m.ffn % tp.size == 0,
           "tensor parallel " << tp.size << " must divide heads (" << m.heads << ") and ffn ("
                              << m.ffn << ")");
  LT_CHECK(m.kv_heads % tp.size == 0 || tp.size % m.kv_heads == 0,
           "tensor parallel " << tp.size << " must divide kv_heads (" << m.kv_heads
                              << ") or be a multiple of it (KV heads are then replicated)");
  ModelConfig local = m;
  local.head_dim = m.resolved_head_dim();
  local.heads = m.heads / tp.size;
  // Fewer KV heads than ranks: each rank holds the one KV head its query heads use.
  local.kv_heads = std::max<std::int64_t>(1, m.kv_heads / tp.size);
  local.ffn = m.ffn / tp.size;
  local.vocab = vocab_rows_per_rank(m, tp);
  return local;
}

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
