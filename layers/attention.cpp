#include "layers/attention.h"

#include <cmath>

#include "layers/linear.h"
#include "layers/rope.h"
#include "parallel/communicator.h"
#include "parallel/ring_attention.h"

namespace lt {
namespace {

bool ring_active(const StepContext& ctx) {
  return ctx.cp != nullptr && ctx.cp->size() > 1;
}

}  // namespace

Attention::Attention(const ModelConfig& m, ParameterGroup& group, const std::string& prefix)
    : m_(m), group_(group), prefix_(prefix) {}

std::vector<ParamSpec> Attention::param_specs(const ModelConfig& m, const std::string& prefix) {
  const std::string a = prefix + "self_attn.";
  std::vector<ParamSpec> specs = {
      {a + "q_proj.weight", Shape{m.q_size(), m.dim}, Init::normal, m.init_std},
      {a + "k_proj.weight", Shape{m.kv_size(), m.dim}, Init::normal, m.init_std},
      {a + "v_proj.weight", Shape{m.kv_size(), m.dim}, Init::normal, m.init_std},
  };
  if (m.qkv_bias) {
    specs.push_back({a + "q_proj.bias", Shape{m.q_size()}, Init::zeros, 0.0, false});
    specs.push_back({a + "k_proj.bias", Shape{m.kv_size()}, Init::zeros, 0.0, false});
    specs.push_back({a + "v_proj.bias", Shape{m.kv_size()}, Init::zeros, 0.0, false});
  }
  specs.push_back({a + "o_proj.weight", Shape{m.dim, m.q_size()}, Init::normal, m.init_std});
  return specs;
}

AttentionShape Attention::shape(const StepContext& ctx) const {
  AttentionShape s;
  s.batch = ctx.batch;
  s.q_len = ctx.seq_len;
  s.kv_len = ctx.seq_len;
  s.heads = m_.heads;
  s.kv_heads = m_.kv_heads;
  s.head_dim = m_.resolved_head_dim();
  s.causal = true;
  s.q_doc = ctx.doc_ids;
  s.k_doc = ctx.doc_ids;
  return s;
}

void Attention::forward(const Tensor& xn, const StepContext& ctx, Saved& saved,
                        const Tensor& residual) const {
  const std::int64_t qs = m_.q_size(), kvs = m_.kv_size(), width = qs + 2 * kvs;
  const std::string a = prefix_ + "self_attn.";
  const Tensor w_qkv = group_.fused(a + "q_proj.weight", Shape{width, m_.dim}, false);
  const Tensor b_qkv =
      m_.qkv_bias ? group_.fused(a + "q_proj.bias", Shape{width}, false) : Tensor();
  saved.qkv = Tensor::empty(Shape{ctx.tokens(), width}, ctx.dtype, MemCategory::activations);
  linear_forward(xn, w_qkv, b_qkv, saved.qkv);
  const Tensor q = saved.qkv.columns(0, qs), k = saved.qkv.columns(qs, kvs),
               v = saved.qkv.columns(qs + kvs, kvs);
  ctx.rope->forward(q, ctx.positions);
  ctx.rope->forward(k, ctx.positions);
  saved.out = Tensor::empty(Shape{ctx.tokens(), qs}, ctx.dtype, MemCategory::activations);
  const DType stat = ctx.dtype == DType::f64 ? DType::f64 : DType::f32;
  saved.lse =
      Tensor::empty(Shape{ctx.batch, m_.heads, ctx.seq_len}, stat, MemCategory::activations);
  if (ring_active(ctx)) {
    ring_attention_forward(*ctx.cp, shape(ctx), *ctx.ring, q, k, v, saved.out, saved.lse);
  } else {
    attention_forward(shape(ctx), q, k, v, saved.out, saved.lse);
  }
  row_parallel_accumulate(saved.out, group_.get(a + "o_proj.weight").value, residual, ctx.tp,
                          ctx.sp_active());
}

void Attention::backward(const Tensor& dresidual, const Tensor& xn, const StepContext& ctx,
                         const Saved& saved, const Tensor& d_xn) const {
  const std::int64_t qs = m_.q_size(), kvs = m_.kv_size(), width = qs + 2 * kvs;
  const std::string a = prefix_ + "self_attn.";
  const Parameter& wo = group_.get(a + "o_proj.weight");
  Tensor d_out = Tensor::empty(Shape{ctx.tokens(), qs}, ctx.dtype, MemCategory::workspace);
  linear_backward(dresidual, saved.out, wo.value, d_out, wo.grad, Tensor());

  Tensor dqkv = Tensor::empty(Shape{ctx.tokens(), width}, ctx.dtype, MemCategory::workspace);
  const Tensor dq = dqkv.columns(0, qs), dk = dqkv.columns(qs, kvs),
               dv = dqkv.columns(qs + kvs, kvs);
  const Tensor q = saved.qkv.columns(0, qs), k = saved.qkv.columns(qs, kvs);
  const Tensor v = saved.qkv.columns(qs + kvs, kvs);
  if (ring_active(ctx)) {
    ring_attention_backward(*ctx.cp, shape(ctx), *ctx.ring, q, k, v, saved.out, saved.lse, d_out,
                            dq, dk, dv);
  } else {
    attention_backward(shape(ctx), q, k, v, saved.out, saved.lse, d_out, dq, dk, dv);
  }
  ctx.rope->backward(dq, ctx.positions);
  ctx.rope->backward(dk, ctx.positions);

  const Tensor w_qkv = group_.fused(a + "q_proj.weight", Shape{width, m_.dim}, false);
  const Tensor dw_qkv = group_.fused(a + "q_proj.weight", Shape{width, m_.dim}, true);
  const Tensor db_qkv =
      m_.qkv_bias ? group_.fused(a + "q_proj.bias", Shape{width}, true) : Tensor();
  column_parallel_backward(dqkv, xn, w_qkv, d_xn, dw_qkv, db_qkv, ctx.tp, ctx.sp_active());
}

}  // namespace lt
