// Single-process inference with a KV cache: tokens are appended to a growing sequence, and only
// the new tokens run through the model. Each layer keeps the keys (after RoPE) and values of
// every token so far; a new token's query attends over them, with RoPE positions continuing
// from the cache's length. The arithmetic is the training forward's (same kernels, same fused
// weights), so the logits equal those of a full forward over the whole sequence up to rounding.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "layers/model.h"
#include "layers/rope.h"

namespace lt {

class Decoder {
 public:
  enum class Logits { last, all };

  // Reads `model`'s weights (it must be a whole model: no tensor parallelism) and holds up to
  // `capacity` tokens. The model must outlive the decoder and keep its weights.
  Decoder(const Model& model, std::int64_t capacity);

  // Runs `tokens` at positions length() .. length() + n - 1 and appends them to the cache.
  // Returns fp32 logits [1, vocab] of the last token, or [n, vocab] of every one with
  // Logits::all. Throws lt::Error when the cache would exceed its capacity.
  Tensor append(std::span<const std::int32_t> tokens, Logits which = Logits::last);

  std::int64_t length() const { return length_; }
  std::int64_t capacity() const { return capacity_; }

 private:
  // x [n, dim] += the attention of block `layer` over the cache (which receives the new keys).
  void attention(std::size_t layer, const Tensor& x, std::span<const std::int32_t> positions);
  void mlp(std::size_t layer, const Tensor& x) const;
  Tensor rmsnorm(const Tensor& x, const std::string& weight, std::size_t group) const;
  Tensor logits(const Tensor& x) const;
  const Tensor& weight(std::size_t group, const std::string& name) const;

  const Model& model_;
  const ModelConfig& m_;
  std::int64_t capacity_;
  std::int64_t length_ = 0;
  Rope rope_;
  std::vector<Tensor> keys_;         // per layer [capacity, kv_size], after RoPE
  std::vector<Tensor> values_;       // per layer [capacity, kv_size]
  std::vector<std::int32_t> order_;  // 0 .. capacity - 1: the causal order of cached tokens
};

}  // namespace lt
