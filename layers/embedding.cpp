#include "layers/embedding.h"

#include "core/ops.h"

namespace lt {

Tensor Embedding::forward(std::span<const std::int32_t> tokens, const StepContext& ctx) const {
  Tensor x = Tensor::empty(Shape{static_cast<std::int64_t>(tokens.size()), table_.value.dim(1)},
                           ctx.dtype, MemCategory::activations);
  embedding_forward(table_.value, tokens, x);
  return x;
}

void Embedding::backward(const Tensor& dx, std::span<const std::int32_t> tokens) const {
  embedding_backward(dx, tokens, table_.grad);
}

}  // namespace lt
