#include "layers/rmsnorm.h"

#include "core/ops.h"

namespace lt {

void RMSNorm::forward(const Tensor& x, const Tensor& y, Saved& saved) const {
  const DType stat = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  saved.rstd = Tensor::empty(Shape{x.dim(0)}, stat, MemCategory::activations);
  rmsnorm_forward(x, weight_.value, eps_, y, saved.rstd);
}

void RMSNorm::backward(const Tensor& dy, const Tensor& x, const Saved& saved, const Tensor& dx,
                       bool accumulate) const {
  rmsnorm_backward(dy, x, weight_.value, saved.rstd, dx, weight_.grad, accumulate);
}

}  // namespace lt
