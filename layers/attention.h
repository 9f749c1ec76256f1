// Self-attention: fused QKV projection, RoPE on q and k, blockwise causal attention with GQA and
// document masks, output projection added into the residual stream.
#pragma once

#include <string>
#include <vector>

#include "core/ops.h"
#include "layers/model_config.h"
#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

class Attention {
 public:
  struct Saved {
    Tensor qkv;  // [tokens, q + 2 kv], q and k after RoPE
    Tensor out;  // [tokens, q] attention output before the projection
    Tensor lse;  // [batch, heads, seq] row log-sum-exp
  };

  Attention(const ModelConfig& m, ParameterGroup& group, const std::string& prefix);
  static std::vector<ParamSpec> param_specs(const ModelConfig& m, const std::string& prefix);

  // residual += Wo · attention(xn)
  void forward(const Tensor& xn, const StepContext& ctx, Saved& saved,
               const Tensor& residual) const;
  // Given dresidual (the gradient of the residual stream), writes d_xn.
  void backward(const Tensor& dresidual, const Tensor& xn, const StepContext& ctx,
                const Saved& saved, const Tensor& d_xn) const;

 private:
  AttentionShape shape(const StepContext& ctx) const;

  const ModelConfig& m_;
  ParameterGroup& group_;
  std::string prefix_;
};

}  // namespace lt
