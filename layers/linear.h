// Linear layers as GEMMs on [tokens, features] activations with weights stored [out, in]
// (HuggingFace layout): y = x W^T (+ b).
#pragma once

#include "core/tensor.h"

namespace lt {

// y = x W^T + b; with accumulate, y += x W^T + b (e.g. adding into the residual stream).
// `bias` may be undefined.
void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                    bool accumulate = false);

// dW += dy^T x and db += column sums of dy (when defined); dx = dy W (+= with accumulate_dx)
// when dx is defined.
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                     const Tensor& dweight, const Tensor& dbias, bool accumulate_dx = false);

}  // namespace lt
