// The logits of a full (uncached) forward pass, for tests that compare other paths with it:
// the KV-cached decoder, and exported models rebuilt elsewhere.
#pragma once

#include <vector>

#include "core/ops.h"
#include "layers/model.h"

namespace lt::test {

// Logits [tokens, vocab] (f32) of one sequence of `tokens` at positions 0..n-1.
inline Tensor full_forward_logits(const Model& model, const std::vector<std::int32_t>& tokens) {
  const auto n = static_cast<std::int64_t>(tokens.size());
  std::vector<std::int32_t> positions(tokens.size()), targets(tokens.size(), 0);
  for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int32_t>(i);
  const std::vector<float> weights(tokens.size(), 1.0f);
  const TokenBatch batch{1, n, tokens, targets, weights, positions, {}};
  Model::Activations acts;
  model.forward(batch, acts);
  const ModelConfig& m = model.config();
  const Parameter* head =
      model.find(m.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  Tensor logits = Tensor::empty(Shape{n, m.vocab}, DType::f32, MemCategory::workspace);
  matmul(acts.normed, false, head->value, true, logits);
  return logits;
}

}  // namespace lt::test
