// Ring attention for context parallelism. Every cp rank holds q, k and v for its own tokens (the
// zigzag chunks of each sequence). K/V blocks travel around the ring with non-blocking send/recv,
// double-buffered, while the current block computes; partial outputs merge by log-sum-exp.
// Backward recomputes each block from the final output and LSE, accumulates dQ locally, and sends
// dK/dV along with their block until they arrive back at its owner.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ops.h"
#include "parallel/communicator.h"

namespace lt {

// Which global tokens every cp rank holds: order[r] is the causal position of each of rank r's
// local tokens ([batch * local_len]); doc[r] their documents (empty: one document).
struct RingLayout {
  std::vector<std::vector<std::int32_t>> order;
  std::vector<std::vector<std::int32_t>> doc;
};

// shape describes the local block: q_len = kv_len = local tokens per sequence; its order/doc
// spans are ignored (the layout supplies them per block).
void ring_attention_forward(Communicator& cp, const AttentionShape& shape, const RingLayout& layout,
                            const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                            const Tensor& lse);

void ring_attention_backward(Communicator& cp, const AttentionShape& shape,
                             const RingLayout& layout, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out, const Tensor& lse,
                             const Tensor& dout, const Tensor& dq, const Tensor& dk,
                             const Tensor& dv);

}  // namespace lt
