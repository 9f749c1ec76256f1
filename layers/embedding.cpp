#include "layers/embedding.h"

#include "core/ops.h"
#include "layers/linear.h"
#include "parallel/communicator.h"

namespace lt {

Tensor Embedding::forward(std::span<const std::int32_t> tokens, const StepContext& ctx) const {
  Tensor x = Tensor::empty(Shape{static_cast<std::int64_t>(tokens.size()), table_.value.dim(1)},
                           ctx.dtype, MemCategory::activations);
  if (ctx.tp == nullptr || ctx.tp->size() == 1) {
    embedding_forward(table_.value, tokens, x);
    return x;
  }
  // Each rank fills the rows of its vocabulary shard; the sum over tp has exactly one nonzero
  // term per token, so it is exact in any dtype.
  embedding_shard_forward(table_.value, vocab_offset_, tokens, x);
  if (!ctx.sp_active()) {
    ctx.tp->all_reduce(x);
    return x;
  }
  // Sequence parallel: each rank keeps the summed rows of its token shard.
  Tensor mine =
      Tensor::empty(Shape{ctx.residual_tokens(), x.dim(1)}, ctx.dtype, MemCategory::activations);
  ctx.tp->reduce_scatter(x, mine);
  return mine;
}

void Embedding::backward(const Tensor& dx, std::span<const std::int32_t> tokens,
                         const StepContext& ctx) const {
  if (ctx.tp == nullptr || ctx.tp->size() == 1) {
    embedding_backward(dx, tokens, table_.grad);
  } else if (ctx.sp_active()) {
    embedding_shard_backward(gather_tokens(dx, *ctx.tp, MemCategory::workspace), vocab_offset_,
                             tokens, table_.grad);
  } else {
    embedding_shard_backward(dx, vocab_offset_, tokens, table_.grad);
  }
}

}  // namespace lt
