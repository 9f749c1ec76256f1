// LM head fused with cross-entropy, computed in chunks of rows so that full-vocabulary fp32 logits
// never exist for all tokens at once. The loss is the last op, so backward runs in the same pass.
#pragma once

#include <cstdint>
#include <span>

#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

class Communicator;

struct LossSums {
  double loss = 0.0;         // sum of weight * token loss
  std::int64_t correct = 0;  // weighted tokens whose argmax equals the target
};

// Rows per chunk by default for `rows` tokens over `vocab` logit columns: about 4 MiB of fp32
// logits (at least 16 rows), and never more than a quarter of the rows, so the logits of all
// tokens never exist at once.
std::int64_t default_logit_chunk_rows(std::int64_t rows, std::int64_t vocab);

class LmHeadLoss {
 public:
  // `weight` is [vocab, dim] (the embedding table when tied). chunk_rows 0: automatic. Under
  // tensor parallelism `weight` holds rows [vocab_offset, vocab_offset + rows) of the vocabulary,
  // of which the first `valid_rows` are real tokens (the rest pad the vocabulary to a multiple of
  // tp); -1: all rows.
  LmHeadLoss(Parameter& weight, std::int64_t chunk_rows = 0, std::int64_t vocab_offset = 0,
             std::int64_t valid_rows = -1);

  // h [tokens, dim]. When dh is defined, writes dh = d(grad_scale * loss)/dh and accumulates the
  // weight gradient. `predictions` (optional) receives the argmax token per row.
  // With a tensor-parallel group `tp` of several ranks, the cross-entropy is vocab-parallel: row
  // max, sums and argmax are reduced over tp, and the full logits never exist on one rank.
  LossSums run(const Tensor& h, std::span<const std::int32_t> targets,
               std::span<const float> weights, double grad_scale, const Tensor& dh,
               std::span<std::int32_t> predictions, Communicator* tp = nullptr) const;

  std::int64_t chunk_rows(std::int64_t rows) const;

 private:
  // One chunk of rows over this rank's vocabulary shard; returns the loss sum and fills pred.
  double vocab_parallel_chunk(const Tensor& logits, std::span<const std::int32_t> targets,
                              std::span<const float> weights, double grad_scale,
                              std::span<std::int32_t> pred, Communicator& tp) const;

  Parameter& weight_;
  std::int64_t chunk_rows_;
  std::int64_t vocab_offset_;
  std::int64_t valid_rows_;
};

}  // namespace lt
