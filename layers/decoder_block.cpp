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
Tensor DecoderBlock::forward(const Tensor& x, const StepContext& ctx, Saved& saved,
                             Recompute policy) const {
  saved = Saved{};
  saved.policy = policy;
  return run_forward(x, ctx, saved, policy, /*output=*/true);
}

// Each tensor a policy does not keep is released as soon as the pass is done with it, so that
// forward under `full` holds one block's tensors at a time, never more than its backward will.
Tensor DecoderBlock::run_forward(const Tensor& x, const StepContext& ctx, Saved& saved,
                                 Recompute policy, bool output) const {
  const bool keep_norms = policy == Recompute::none;
  const bool keep_any = policy != Recompute::full;
  saved.xn1 = normed_input(norm1_, x, ctx, saved.norm1);
  if (!keep_norms) saved.norm1 = {};  // rstd comes back when the norm reruns
  saved.h = Tensor::empty(x.shape(), ctx.dtype, MemCategory::activations);
  copy(x, saved.h);
  attn_.forward(saved.xn1, ctx, saved.attn, saved.h);
  if (!keep_norms) saved.xn1 = Tensor();
  if (!keep_any) saved.attn = {};
  saved.xn2 = normed_input(norm2_, saved.h, ctx, saved.norm2);
  if (!keep_norms) saved.norm2 = {};
  Tensor y;
  if (output) {
    y = Tensor::empty(x.shape(), ctx.dtype, MemCategory::activations);
    copy(saved.h, y);
  }
  if (!keep_any) saved.h = Tensor();
  mlp_.forward(saved.xn2, ctx, saved.mlp, y);
  if (!keep_norms) {
    saved.xn2 = Tensor();
    saved.mlp.act = Tensor();
  }
  if (!keep_any) saved.mlp = {};
  return y;
}

// Recomputed tensors come from the same kernels on bit-identical inputs, so they equal what
// forward computed, and the gradients equal those of `none` exactly. Every rank of the tp and
// cp groups recomputes at the same point of the same block, so the collectives a rerun issues
// (sequence-parallel gathers, row-parallel reductions, the attention ring) match up.
Tensor DecoderBlock::backward(Tensor dy, const Tensor& x, const StepContext& ctx,
                              Saved& saved) const {
  if (saved.policy == Recompute::full) run_forward(x, ctx, saved, Recompute::none, false);
  if (!saved.xn2.defined()) saved.xn2 = normed_input(norm2_, saved.h, ctx, saved.norm2);
  if (!saved.mlp.act.defined()) mlp_.recompute_act(ctx, saved.mlp);
  Tensor d_xn = Tensor::empty(x.shape(), ctx.dtype, MemCategory::workspace);
  mlp_.backward(all_tokens(dy, ctx), saved.xn2, ctx, saved.mlp, d_xn);
  saved.mlp = {};
  saved.xn2 = Tensor();
  norm2_.backward(d_xn, saved.h, saved.norm2, dy, /*accumulate=*/true);  // dy is now dL/dh
  saved.h = Tensor();
  saved.norm2 = {};
  // Recomputed only now, after the MLP's tensors are gone, to keep the block's peak low.
  if (!saved.xn1.defined()) saved.xn1 = normed_input(norm1_, x, ctx, saved.norm1);
  attn_.backward(all_tokens(dy, ctx), saved.xn1, ctx, saved.attn, d_xn);
  saved.attn = {};
  saved.xn1 = Tensor();
  norm1_.backward(d_xn, x, saved.norm1, dy, /*accumulate=*/true);  // dy is now dL/dx
  saved.norm1 = {};
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
