// SwiGLU MLP: fused gate/up projection, silu(gate) * up, down projection into the residual.
#pragma once

#include <string>
#include <vector>

#include "layers/model_config.h"
#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

class Mlp {
 public:
  struct Saved {
    Tensor gate_up;  // [tokens, 2 ffn]
    Tensor act;      // [tokens, ffn] silu(gate) * up
  };

  Mlp(const ModelConfig& m, ParameterGroup& group, const std::string& prefix);
  static std::vector<ParamSpec> param_specs(const ModelConfig& m, const std::string& prefix);

  // residual += W_down · swiglu(W_gate_up · xn). With `residual` undefined (recomputing the
  // saved tensors for backward) the down projection is skipped.
  void forward(const Tensor& xn, const StepContext& ctx, Saved& saved,
               const Tensor& residual) const;
  // saved.act = silu(gate) * up from saved.gate_up: in forward, and again in backward when the
  // recompute policy did not keep it.
  void recompute_act(const StepContext& ctx, Saved& saved) const;
  void backward(const Tensor& dresidual, const Tensor& xn, const StepContext& ctx,
                const Saved& saved, const Tensor& d_xn) const;

 private:
  const ModelConfig& m_;
  ParameterGroup& group_;
  std::string prefix_;
};

}  // namespace lt
