#include "layers/decoder_block.h"

#include "core/ops.h"
#include "layers/linear.h"

namespace lt {

std::string DecoderBlock::prefix(std::int64_t index) {
  return "model.layers." + std::to_string(index) + ".";
}

std::vector<ParamSpec> DecoderBlock::param_specs(const ModelConfig& m, std::int64_t index) {
  const std::string p = prefix(index);
  auto norm = [](std::string name, std::int64_t dim) {
    ParamSpec s{std::move(name), Shape{dim}, Init::ones, 0.0, false};
    s.is_norm = true;
    return s;
  };
  std::vector<ParamSpec> specs = {norm(p + "input_layernorm.weight", m.dim)};
  for (auto& s : Attention::param_specs(m, p)) specs.push_back(std::move(s));
  specs.push_back(norm(p + "post_attention_layernorm.weight", m.dim));
  for (auto& s : Mlp::param_specs(m, p)) specs.push_back(std::move(s));
  return specs;
}

DecoderBlock::DecoderBlock(const ModelConfig& m, ParameterGroup& group, std::int64_t index)
    : norm1_(group.get(prefix(index) + "input_layernorm.weight"), m.norm_eps),
      attn_(m, group, prefix(index)),
      norm2_(group.get(prefix(index) + "post_attention_layernorm.weight"), m.norm_eps),
      mlp_(m, group, prefix(index)) {}

// Under sequence parallel, x, h and y hold this rank's token shard; the normed inputs of
// attention and the MLP are gathered to all tokens (and kept whole for the weight gradients).
Tensor DecoderBlock::forward(const Tensor& x, const StepContext& ctx, Saved& saved) const {
  const Shape shape = x.shape();
  saved.xn1 = normed_input(norm1_, x, ctx, saved.norm1);
  saved.h = Tensor::empty(shape, ctx.dtype, MemCategory::activations);
  copy(x, saved.h);
  attn_.forward(saved.xn1, ctx, saved.attn, saved.h);
  saved.xn2 = normed_input(norm2_, saved.h, ctx, saved.norm2);
  Tensor y = Tensor::empty(shape, ctx.dtype, MemCategory::activations);
  copy(saved.h, y);
  mlp_.forward(saved.xn2, ctx, saved.mlp, y);
  return y;
}

Tensor DecoderBlock::backward(Tensor dy, const Tensor& x, const StepContext& ctx,
                              const Saved& saved) const {
  Tensor d_xn = Tensor::empty(x.shape(), ctx.dtype, MemCategory::workspace);
  mlp_.backward(all_tokens(dy, ctx), saved.xn2, ctx, saved.mlp, d_xn);
  norm2_.backward(d_xn, saved.h, saved.norm2, dy, /*accumulate=*/true);  // dy is now dL/dh
  attn_.backward(all_tokens(dy, ctx), saved.xn1, ctx, saved.attn, d_xn);
  norm1_.backward(d_xn, x, saved.norm1, dy, /*accumulate=*/true);  // dy is now dL/dx
  return dy;
}

Tensor DecoderBlock::all_tokens(const Tensor& t, const StepContext& ctx) {
  return ctx.sp_active() ? gather_tokens(t, *ctx.tp, MemCategory::workspace) : t;
}

Tensor DecoderBlock::normed_input(const RMSNorm& norm, const Tensor& x, const StepContext& ctx,
                                  RMSNorm::Saved& saved) {
  Tensor xn = Tensor::empty(x.shape(), ctx.dtype,
                            ctx.sp_active() ? MemCategory::workspace : MemCategory::activations);
  norm.forward(x, xn, saved);
  if (!ctx.sp_active()) return xn;
  return gather_tokens(xn, *ctx.tp, MemCategory::activations);
}

}  // namespace lt
