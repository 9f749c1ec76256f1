#include "layers/linear.h"

#include "core/ops.h"

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

}  // namespace lt
