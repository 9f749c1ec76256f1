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

class Communicator;

// residual += x W^T, summed over the tensor-parallel group when `tp` has several ranks (a
// row-parallel layer: each rank holds a slice of W's columns and of x's features). The partial
// products are reduced in fp32 (f64 for f64) before the one rounding into the residual.
// With `scatter` (sequence parallel), residual holds only this rank's 1/tp of the rows and the
// sum is reduce-scattered onto it.
void row_parallel_accumulate(const Tensor& x, const Tensor& weight, const Tensor& residual,
                             Communicator* tp, bool scatter = false);

// linear_backward for a column-parallel layer: the input gradient dy W is partial on each rank
// and is summed over `tp` before it is written to dx.
// With `scatter` (sequence parallel), dx holds only this rank's 1/tp of the rows.
void column_parallel_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                              const Tensor& dx, const Tensor& dweight, const Tensor& dbias,
                              Communicator* tp, bool scatter = false);

// All rows of a token-sharded tensor (sequence parallel): `shard` is this rank's 1/tp of them.
Tensor gather_tokens(const Tensor& shard, Communicator& tp, MemCategory category);

}  // namespace lt
