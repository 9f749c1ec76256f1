// Rotary position embedding tables: cos and sin of position * inv_freq, with the inverse
// frequencies optionally rescaled for context extension (linear, NTK-aware, YaRN, Llama-3).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "layers/model_config.h"

namespace lt {

// Inverse frequencies (head_dim / 2 of them) after the configured scaling.
std::vector<double> rope_inverse_frequencies(const ModelConfig& m);

// The base the frequencies are powers of: rope_theta, stretched under NTK-aware scaling.
double rope_base(const ModelConfig& m);

// What cos and sin are multiplied by: YaRN's attention temperature, 1 otherwise. Scaling both
// q and k by it scales the attention logits by its square, as HF's YaRN rotary embedding does.
double rope_attention_factor(const ModelConfig& m);

class Rope {
 public:
  Rope(const ModelConfig& m, std::int64_t max_positions);

  std::int64_t max_positions() const { return cos_.dim(0); }
  // Rotates every head of x [tokens, heads*head_dim] in place.
  void forward(const Tensor& x, std::span<const std::int32_t> positions) const;
  // The transpose of forward (rotation by the negative angle), for gradients.
  void backward(const Tensor& dx, std::span<const std::int32_t> positions) const;

 private:
  std::int64_t head_dim_;
  Tensor cos_;
  Tensor sin_;
};

}  // namespace lt
