#include "layers/linear.h"

#include "core/ops.h"
#include "parallel/communicator.h"

namespace lt {

void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                    bool accumulate) {
  matmul(x, false, weight, true, y, 1.0, accumulate ? 1.0 : 0.0);
  if (bias.defined()) add_bias(y, bias);
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& dx,
                     const Tensor& dweight, const Tensor& dbias, bool accumulate_dx) {
  matmul(dy, true, x, false, dweight, 1.0, 1.0);
  if (dbias.defined()) bias_backward(dy, dbias);
  if (dx.defined()) matmul(dy, false, weight, false, dx, 1.0, accumulate_dx ? 1.0 : 0.0);
}

namespace {

bool active(const Communicator* tp) {
  return tp != nullptr && tp->size() > 1;
}

DType reduce_dtype(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

}  // namespace

void row_parallel_accumulate(const Tensor& x, const Tensor& weight, const Tensor& residual,
                             Communicator* tp) {
  if (!active(tp)) {
    linear_forward(x, weight, Tensor(), residual, true);
    return;
  }
  Tensor partial = Tensor::empty(residual.shape(), reduce_dtype(x.dtype()), MemCategory::workspace);
  matmul(x, false, weight, true, partial);
  tp->all_reduce(partial);
  add(residual, partial);
}

void column_parallel_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                              const Tensor& dx, const Tensor& dweight, const Tensor& dbias,
                              Communicator* tp) {
  if (!active(tp)) {
    linear_backward(dy, x, weight, dx, dweight, dbias);
    return;
  }
  Tensor partial = Tensor::empty(dx.shape(), reduce_dtype(dy.dtype()), MemCategory::workspace);
  linear_backward(dy, x, weight, partial, dweight, dbias);
  tp->all_reduce(partial);
  copy(partial, dx);
}

}  // namespace lt
