// LM head fused with cross-entropy, computed in chunks of rows so that full-vocabulary fp32 logits
// never exist for all tokens at once. The loss is the last op, so backward runs in the same pass.
#pragma once

#include <cstdint>
#include <span>

#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

struct LossSums {
  double loss = 0.0;         // sum of weight * token loss
  std::int64_t correct = 0;  // weighted tokens whose argmax equals the target
};

class LmHeadLoss {
 public:
  // `weight` is [vocab, dim] (the embedding table when tied). chunk_rows 0: automatic.
  LmHeadLoss(Parameter& weight, std::int64_t chunk_rows = 0);

  // h [tokens, dim]. When dh is defined, writes dh = d(grad_scale * loss)/dh and accumulates the
  // weight gradient. `predictions` (optional) receives the argmax token per row.
  LossSums run(const Tensor& h, std::span<const std::int32_t> targets,
               std::span<const float> weights, double grad_scale, const Tensor& dh,
               std::span<std::int32_t> predictions) const;

  std::int64_t chunk_rows(std::int64_t rows) const;

 private:
  Parameter& weight_;
  std::int64_t chunk_rows_;
};

}  // namespace lt
