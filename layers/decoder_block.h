// One Llama decoder block: h = x + Attn(RMSNorm(x)); y = h + MLP(RMSNorm(h)).
#pragma once

#include <string>
#include <vector>

#include "layers/attention.h"
#include "layers/mlp.h"
#include "layers/recompute.h"
#include "layers/rmsnorm.h"

namespace lt {

class DecoderBlock {
 public:
  // What backward reads. Under `none` forward fills every field; under `selective` it leaves
  // xn1, norm1, xn2, norm2 and mlp.act empty, under `full` everything. Backward recomputes
  // the empty fields when it needs them and frees each field once consumed.
  struct Saved {
    Recompute policy = Recompute::none;
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

  // Returns the block output y; `saved` receives what `policy` keeps.
  Tensor forward(const Tensor& x, const StepContext& ctx, Saved& saved,
                 Recompute policy = Recompute::none) const;
  // Consumes dy (the gradient of y, overwritten in place) and returns the gradient of x. x is
  // the block input given to forward. Recomputes what forward did not keep, and empties
  // `saved` as it goes, so that at most one block's tensors are live beyond what is kept.
  Tensor backward(Tensor dy, const Tensor& x, const StepContext& ctx, Saved& saved) const;

 private:
  // The forward pass, filling every field of `saved` and releasing what `policy` does not
  // keep as soon as the pass is done with it. Without `output` (the rerun of `full` in
  // backward) y and the down projection that produces it are skipped: backward reads neither.
  Tensor run_forward(const Tensor& x, const StepContext& ctx, Saved& saved, Recompute policy,
                     bool output) const;
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
