// Floating-point operations of a training step. Model FLOPs (what MFU divides by): forward and
// backward of every matrix multiply, with causal attention counted over the keys each query
// really sees (i + 1 of them at position i of its document, so packed documents count by their
// own lengths: half the square plus the diagonal). Hardware FLOPs add what recomputation reruns:
// the blockwise attention's backward recomputes its scores, and `full` recompute reruns the
// block's forward (all but the down projection, whose output backward never reads). Elementwise
// work (norms, RoPE, SwiGLU, softmax) is not counted.
#pragma once

#include <cstdint>
#include <span>

#include "layers/model_config.h"
#include "layers/recompute.h"

namespace lt {

struct StepFlops {
  double model = 0.0;
  double hardware = 0.0;
};

// Forward FLOPs per token of one block's projections: QKV, O, gate/up and down.
double block_projection_flops_per_token(const ModelConfig& m);
// Forward FLOPs of one block's attention over one document of `length` tokens.
double attention_flops(const ModelConfig& m, std::int64_t length);
// Forward FLOPs per token of the LM head.
double head_flops_per_token(const ModelConfig& m);

// A step over documents of these lengths (every sequence of every micro-batch, split at its
// document boundaries), with one recompute policy per block (or one for all, or none given).
StepFlops step_flops(const ModelConfig& m, std::span<const std::int64_t> document_lengths,
                     std::span<const Recompute> policies = {});

}  // namespace lt
