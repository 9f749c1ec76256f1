#pragma once

#include <span>

#include "layers/parameter.h"
#include "layers/step_context.h"

namespace lt {

class Embedding {
 public:
  explicit Embedding(Parameter& table) : table_(table) {}

  Tensor forward(std::span<const std::int32_t> tokens, const StepContext& ctx) const;
  void backward(const Tensor& dx, std::span<const std::int32_t> tokens) const;

 private:
  Parameter& table_;
};

}  // namespace lt
