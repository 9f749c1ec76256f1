// One Llama decoder block: h = x + Attn(RMSNorm(x)); y = h + MLP(RMSNorm(h)).
#pragma once

#include <string>
#include <vector>

#include "layers/attention.h"
#include "layers/mlp.h"
#include "layers/rmsnorm.h"

namespace lt {

class DecoderBlock {
 public:
  // What backward needs (recompute policy "none": everything is kept).
  struct Saved {
    Tensor xn1;
    RMSNorm::Saved norm1;
    Attention::Saved attn;
    Tensor h;
    Tensor xn2;
    RMSNorm::Saved norm2;
    Mlp::Saved mlp;
  };

  DecoderBlock(const ModelConfig& m, ParameterGroup& group, std::int64_t index);
  static std::string prefix(std::int64_t index);
  static std::vector<ParamSpec> param_specs(const ModelConfig& m, std::int64_t index);

  // Returns the block output y.
  Tensor forward(const Tensor& x, const StepContext& ctx, Saved& saved) const;
  // Consumes dy (the gradient of y, overwritten in place) and returns the gradient of x.
  Tensor backward(Tensor dy, const Tensor& x, const StepContext& ctx, const Saved& saved) const;

 private:
  // t, or all tokens of the token-sharded t under sequence parallel.
  static Tensor all_tokens(const Tensor& t, const StepContext& ctx);
  // norm(x) as the input of a column-parallel layer: gathered to all tokens under SP.
  static Tensor normed_input(const RMSNorm& norm, const Tensor& x, const StepContext& ctx,
                             RMSNorm::Saved& saved);

  RMSNorm norm1_;
  Attention attn_;
  RMSNorm norm2_;
  Mlp mlp_;
};

}  // namespace lt
