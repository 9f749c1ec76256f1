// What every layer needs to know about the tokens of the current micro-batch.
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"

namespace lt {

class Rope;
class Communicator;
struct RingLayout;

struct StepContext {
  std::int64_t batch = 0;
  std::int64_t seq_len = 0;
  std::span<const std::int32_t> positions;  // RoPE position per token [batch * seq_len]
  std::span<const std::int32_t> doc_ids;    // document per token (empty: one document)
  const Rope* rope = nullptr;
  // Context parallelism: the cp group and which global tokens each of its ranks holds. When the
  // group has more than one rank, attention runs as a ring over it.
  Communicator* cp = nullptr;
  // Tensor parallelism: each rank holds a slice of the heads, the FFN and the vocabulary.
  Communicator* tp = nullptr;
  // Sequence parallel (with tp): the residual stream, norms and block inputs hold only this
  // rank's 1/tp of the tokens; the tokens are gathered before the column-parallel layers and
  // reduce-scattered after the row-parallel ones.
  bool sequence_parallel = false;
  const RingLayout* ring = nullptr;
  DType dtype = DType::f32;       // activations and compute weights
  DType grad_dtype = DType::f32;  // parameter gradients

  std::int64_t tokens() const { return batch * seq_len; }
  bool sp_active() const;
  // Tokens of the residual stream on this rank.
  std::int64_t residual_tokens() const;
};

}  // namespace lt
