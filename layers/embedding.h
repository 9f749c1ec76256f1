#pragma once

#include <span>

#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

class Embedding {
 public:
  // `vocab_offset`: the first token id of this rank's rows (tensor-parallel vocabulary shard).
  explicit Embedding(Parameter& table, std::int64_t vocab_offset = 0)
      : table_(table), vocab_offset_(vocab_offset) {}

  Tensor forward(std::span<const std::int32_t> tokens, const StepContext& ctx) const;
  void backward(const Tensor& dx, std::span<const std::int32_t> tokens,
                const StepContext& ctx) const;

 private:
  Parameter& table_;
  std::int64_t vocab_offset_;
};

}  // namespace lt
