#include "layers/decode.h"

#include <numeric>

#include "core/error.h"
#include "core/ops.h"
#include "layers/decoder_block.h"
#include "layers/linear.h"

namespace lt {
namespace {

Tensor activation(std::int64_t rows, std::int64_t cols, DType dtype) {
  return Tensor::empty(Shape{rows, cols}, dtype, MemCategory::activations);
}

std::string attn(std::size_t layer, const std::string& name) {
  return DecoderBlock::prefix(static_cast<std::int64_t>(layer)) + "self_attn." + name;
}

std::string block(std::size_t layer, const std::string& name) {
  return DecoderBlock::prefix(static_cast<std::int64_t>(layer)) + name;
}

}  // namespace

Decoder::Decoder(const Model& model, std::int64_t capacity)
    : model_(model), m_(model.config()), capacity_(capacity), rope_(m_, capacity) {
  LT_CHECK(model.tensor_parallel().size == 1, "Decoder needs a whole model, not a tp slice");
  LT_CHECK(capacity > 0, "Decoder capacity " << capacity);
  const auto layers = static_cast<std::size_t>(m_.layers);
  for (std::size_t i = 0; i < layers; ++i) {
    keys_.push_back(activation(capacity, m_.kv_size(), model.dtype()));
    values_.push_back(activation(capacity, m_.kv_size(), model.dtype()));
  }
  order_.resize(static_cast<std::size_t>(capacity));
  std::iota(order_.begin(), order_.end(), 0);
}

const Tensor& Decoder::weight(std::size_t group, const std::string& name) const {
  for (const Parameter& p : model_.groups()[group].params()) {
    if (p.spec.name == name) return p.value;
  }
  throw Error("Decoder: the model has no parameter " + name);
}

Tensor Decoder::append(std::span<const std::int32_t> tokens, Logits which) {
  const auto n = static_cast<std::int64_t>(tokens.size());
  LT_CHECK(n > 0, "Decoder::append of no tokens");
  LT_CHECK(length_ + n <= capacity_, "Decoder: " << length_ << " cached + " << n
                                                 << " new tokens exceed the capacity "
                                                 << capacity_);
  const std::span<const std::int32_t> positions(order_.data() + length_,
                                                static_cast<std::size_t>(n));
  Tensor x = activation(n, m_.dim, model_.dtype());
  embedding_forward(weight(0, "model.embed_tokens.weight"), tokens, x);
  for (std::size_t layer = 0; layer < keys_.size(); ++layer) {
    attention(layer, x, positions);
    mlp(layer, x);
  }
  length_ += n;
  return logits(which == Logits::all ? x : x.rows(n - 1, 1));
}

Tensor Decoder::rmsnorm(const Tensor& x, const std::string& name, std::size_t group) const {
  Tensor y = activation(x.dim(0), x.dim(1), x.dtype());
  const DType stat = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const Tensor rstd = Tensor::empty(Shape{x.dim(0)}, stat, MemCategory::workspace);
  rmsnorm_forward(x, weight(group, name), m_.norm_eps, y, rstd);
  return y;
}

// As Attention::forward, with the keys and values of earlier tokens taken from the cache: the
// new queries see every cached token and, among the new ones, those not after them.
void Decoder::attention(std::size_t layer, const Tensor& x,
                        std::span<const std::int32_t> positions) {
  const std::size_t group = layer + 1;
  const ParameterGroup& g = model_.groups()[group];
  const std::int64_t n = x.dim(0), qs = m_.q_size(), kvs = m_.kv_size(), width = qs + 2 * kvs;
  const Tensor xn = rmsnorm(x, block(layer, "input_layernorm.weight"), group);
  const Tensor qkv = activation(n, width, x.dtype());
  linear_forward(xn, g.fused(attn(layer, "q_proj.weight"), Shape{width, m_.dim}, false),
                 m_.qkv_bias ? g.fused(attn(layer, "q_proj.bias"), Shape{width}, false) : Tensor(),
                 qkv);
  const Tensor q = qkv.columns(0, qs), k = qkv.columns(qs, kvs), v = qkv.columns(qs + kvs, kvs);
  rope_.forward(q, positions);
  rope_.forward(k, positions);
  copy(k, keys_[layer].rows(length_, n));
  copy(v, values_[layer].rows(length_, n));

  const std::int64_t total = length_ + n;
  AttentionShape s;
  s.q_len = n;
  s.kv_len = total;
  s.heads = m_.heads;
  s.kv_heads = m_.kv_heads;
  s.head_dim = m_.resolved_head_dim();
  s.q_order = positions;
  s.k_order = std::span<const std::int32_t>(order_.data(), static_cast<std::size_t>(total));
  const Tensor out = activation(n, qs, x.dtype());
  const DType stat = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const Tensor lse = Tensor::empty(Shape{1, m_.heads, n}, stat, MemCategory::workspace);
  attention_forward(s, q, keys_[layer].rows(0, total), values_[layer].rows(0, total), out, lse);
  linear_forward(out, weight(group, attn(layer, "o_proj.weight")), Tensor(), x, true);
}

void Decoder::mlp(std::size_t layer, const Tensor& x) const {
  const std::size_t group = layer + 1;
  const ParameterGroup& g = model_.groups()[group];
  const Tensor xn = rmsnorm(x, block(layer, "post_attention_layernorm.weight"), group);
  const Tensor gate_up = activation(x.dim(0), 2 * m_.ffn, x.dtype());
  linear_forward(xn,
                 g.fused(block(layer, "mlp.gate_proj.weight"), Shape{2 * m_.ffn, m_.dim}, false),
                 Tensor(), gate_up);
  const Tensor act = activation(x.dim(0), m_.ffn, x.dtype());
  swiglu_forward(gate_up, act);
  linear_forward(act, weight(group, block(layer, "mlp.down_proj.weight")), Tensor(), x, true);
}

Tensor Decoder::logits(const Tensor& x) const {
  const std::size_t head = model_.groups().size() - 1;
  const Tensor normed = rmsnorm(x, "model.norm.weight", head);
  const Tensor& w =
      m_.tie_embeddings ? weight(0, "model.embed_tokens.weight") : weight(head, "lm_head.weight");
  const DType out = x.dtype() == DType::f64 ? DType::f64 : DType::f32;  // bf16 GEMMs give f32
  Tensor logits = activation(x.dim(0), m_.vocab, out);
  matmul(normed, false, w, true, logits);
  if (out == DType::f32) return logits;
  Tensor f32 = activation(x.dim(0), m_.vocab, DType::f32);
  copy(logits, f32);
  return f32;
}

}  // namespace lt
