#include "layers/mlp.h"

#include <cmath>

#include "core/ops.h"
#include "layers/linear.h"

namespace lt {

Mlp::Mlp(const ModelConfig& m, ParameterGroup& group, const std::string& prefix)
    : m_(m), group_(group), prefix_(prefix + "mlp.") {}

std::vector<ParamSpec> Mlp::param_specs(const ModelConfig& m, const std::string& prefix) {
  const std::string p = prefix + "mlp.";
  return {
      {p + "gate_proj.weight", Shape{m.ffn, m.dim}, Init::normal, m.init_std},
      {p + "up_proj.weight", Shape{m.ffn, m.dim}, Init::normal, m.init_std},
      {p + "down_proj.weight", Shape{m.dim, m.ffn}, Init::normal, m.init_std},
  };
}

void Mlp::forward(const Tensor& xn, const StepContext& ctx, Saved& saved,
                  const Tensor& residual) const {
  const Tensor w_gate_up =
      group_.fused(prefix_ + "gate_proj.weight", Shape{2 * m_.ffn, m_.dim}, false);
  saved.gate_up =
      Tensor::empty(Shape{ctx.tokens(), 2 * m_.ffn}, ctx.dtype, MemCategory::activations);
  linear_forward(xn, w_gate_up, Tensor(), saved.gate_up);
  recompute_act(ctx, saved);
  if (!residual.defined()) return;
  row_parallel_accumulate(saved.act, group_.get(prefix_ + "down_proj.weight").value, residual,
                          ctx.tp, ctx.sp_active());
}

void Mlp::recompute_act(const StepContext& ctx, Saved& saved) const {
  saved.act = Tensor::empty(Shape{ctx.tokens(), m_.ffn}, ctx.dtype, MemCategory::activations);
  swiglu_forward(saved.gate_up, saved.act);
}

void Mlp::backward(const Tensor& dresidual, const Tensor& xn, const StepContext& ctx,
                   const Saved& saved, const Tensor& d_xn) const {
  const Parameter& down = group_.get(prefix_ + "down_proj.weight");
  Tensor d_act = Tensor::empty(Shape{ctx.tokens(), m_.ffn}, ctx.dtype, MemCategory::workspace);
  linear_backward(dresidual, saved.act, down.value, d_act, down.grad, Tensor());
  Tensor d_gate_up =
      Tensor::empty(Shape{ctx.tokens(), 2 * m_.ffn}, ctx.dtype, MemCategory::workspace);
  swiglu_backward(d_act, saved.gate_up, d_gate_up);
  d_act = Tensor();  // free before the next GEMM's output is allocated
  const Shape fused{2 * m_.ffn, m_.dim};
  column_parallel_backward(d_gate_up, xn, group_.fused(prefix_ + "gate_proj.weight", fused, false),
                           d_xn, group_.fused(prefix_ + "gate_proj.weight", fused, true), Tensor(),
                           ctx.tp, ctx.sp_active());
}

}  // namespace lt
