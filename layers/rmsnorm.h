#pragma once

#include "core/tensor.h"
#include "layers/parameter.h"

namespace lt {

class RMSNorm {
 public:
  struct Saved {
    Tensor rstd;  // [tokens]
  };

  RMSNorm(Parameter& weight, double eps) : weight_(weight), eps_(eps) {}

  void forward(const Tensor& x, const Tensor& y, Saved& saved) const;
  // dx = (or +=, with accumulate) the input gradient; the weight gradient accumulates.
  void backward(const Tensor& dy, const Tensor& x, const Saved& saved, const Tensor& dx,
                bool accumulate) const;

 private:
  Parameter& weight_;
  double eps_;
};

}  // namespace lt
