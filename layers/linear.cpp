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

// Sums per-rank partial products over tp: the whole sum, or with `scatter` only this rank's
// share of its rows (reduce-scatter).
Tensor sum_over_tp(const Tensor& partial, Communicator& tp, bool scatter) {
  if (!scatter) {
    tp.all_reduce(partial);
    return partial;
  }
  Tensor mine = Tensor::empty(Shape{partial.dim(0) / tp.size(), partial.dim(1)}, partial.dtype(),
                              MemCategory::workspace);
  tp.reduce_scatter(partial, mine);
  return mine;
}

}  // namespace

void row_parallel_accumulate(const Tensor& x, const Tensor& weight, const Tensor& residual,
                             Communicator* tp, bool scatter) {
  if (!active(tp)) {
    linear_forward(x, weight, Tensor(), residual, true);
    return;
  }
  const DType acc = reduce_dtype(x.dtype());
  Tensor partial = Tensor::empty(Shape{x.dim(0), weight.dim(0)}, acc, MemCategory::workspace);
  matmul(x, false, weight, true, partial);
  add(residual, sum_over_tp(partial, *tp, scatter));
}

void column_parallel_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                              const Tensor& dx, const Tensor& dweight, const Tensor& dbias,
                              Communicator* tp, bool scatter) {
  if (!active(tp)) {
    linear_backward(dy, x, weight, dx, dweight, dbias);
    return;
  }
  const DType acc = reduce_dtype(dy.dtype());
  Tensor partial = Tensor::empty(x.shape(), acc, MemCategory::workspace);
  linear_backward(dy, x, weight, partial, dweight, dbias);
  copy(sum_over_tp(partial, *tp, scatter), dx);
}

Tensor gather_tokens(const Tensor& shard, Communicator& tp, MemCategory category) {
  Tensor full =
      Tensor::empty(Shape{shard.dim(0) * tp.size(), shard.dim(1)}, shard.dtype(), category);
  tp.all_gather(shard, full);
  return full;
}

}  // namespace lt
