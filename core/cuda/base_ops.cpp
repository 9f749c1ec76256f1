// lt::cuda ops of kernels.h other than matmul: check shapes and dtypes on lt::Tensor as the CPU
// kernels do, then call the raw launchers of base_launch.h.
#include "core/cuda/base_launch.h"
#include "core/cuda/kernels.h"
#include "core/cuda/runtime.h"
#include "core/cuda/tensor_args.h"
#include "core/error.h"

namespace lt::cuda {
namespace {

// A tensor as rows x cols (2D as is, row-strided ok; any other rank as one contiguous row).
launch::Matrix as_matrix(const Tensor& t) {
  if (t.rank() == 2) return {t.raw(), launch_dt(t), t.dim(0), t.dim(1), t.row_stride()};
  LT_CHECK(t.is_contiguous(), "strided tensor of rank " << t.rank());
  return {t.raw(), launch_dt(t), 1, t.numel(), t.numel()};
}

launch::Matrix as_flat(const Tensor& t, const char* op) {
  LT_CHECK(t.is_contiguous(), op << " of a strided tensor " << t.describe());
  return {t.raw(), launch_dt(t), 1, t.numel(), t.numel()};
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  LT_CHECK(src.numel() == dst.numel(), "copy " << src.describe() << " -> " << dst.describe());
  if (src.dtype() == DType::i32 || dst.dtype() == DType::i32) {
    LT_CHECK(src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous(),
             "copy of i32");
    copy_bytes(dst.raw(), src.raw(), src.nbytes());
    return;
  }
  launch::Matrix s = as_matrix(src), d = as_matrix(dst);
  if (s.rows != d.rows || s.cols != d.cols) {
    LT_CHECK(src.is_contiguous() && dst.is_contiguous(), "copy between differently shaped views");
    s = as_flat(src, "copy");
    d = as_flat(dst, "copy");
  }
  launch::cast_copy(s, d);
}

void fill(const Tensor& t, double value) {
  if (t.dtype() == DType::i32) {
    LT_CHECK(t.is_contiguous(), "fill of a strided i32 tensor");
    launch::fill_i32(t.data<std::int32_t>(), t.numel(), static_cast<std::int32_t>(value));
    return;
  }
  launch::fill(as_matrix(t), value);
}

void add(const Tensor& dst, const Tensor& src, double alpha) {
  LT_CHECK(dst.numel() == src.numel() && dst.is_contiguous() && src.is_contiguous(),
           "add " << src.describe() << " into " << dst.describe());
  launch::add(launch_dt(dst), dst.raw(), launch_dt(src), src.raw(), dst.numel(), alpha);
}

void scale(const Tensor& t, double factor) {
  launch::scale(as_flat(t, "scale"), factor);
}

void add_bias(const Tensor& y, const Tensor& bias) {
  LT_CHECK(y.rank() == 2 && bias.numel() == y.dim(1) && bias.dtype() == y.dtype() &&
               bias.is_contiguous(),
           "add_bias " << bias.describe() << " to " << y.describe());
  launch::add_bias(as_matrix(y), bias.raw());
}

void bias_backward(const Tensor& dy, const Tensor& dbias) {
  LT_CHECK(dy.rank() == 2 && dbias.numel() == dy.dim(1) && dbias.is_contiguous(),
           "bias_backward " << dy.describe() << " into " << dbias.describe());
  const DType partial_dtype = dbias.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor partial = device_scratch(launch::bias_chunks(dy.dim(0)) * dy.dim(1), partial_dtype);
  launch::bias_backward(as_matrix(dy), launch_dt(dbias), dbias.raw(), partial.raw());
}

double sum_squares(const Tensor& t) {
  const launch::Matrix m = as_flat(t, "sum_squares");
  Tensor partial = device_scratch(launch::sum_squares_chunks(t.numel()) + 1, DType::f64);
  return launch::sum_squares(m.dt, m.data, t.numel(), partial.data<double>());
}

void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy) {
  const std::int64_t n = master.numel();
  LT_CHECK(grad.numel() == n && m.numel() == n && v.numel() == n &&
               grad.dtype() == master.dtype() && m.dtype() == master.dtype() &&
               v.dtype() == master.dtype(),
           "adamw_update " << master.describe() << " " << grad.describe());
  LT_CHECK(master.dtype() == DType::f32 || master.dtype() == DType::f64,
           "adamw master weights must be f32 or f64");
  LT_CHECK(!compute_copy.defined() || compute_copy.numel() == n,
           "adamw compute copy " << compute_copy.describe());
  for (const Tensor* t : {&master, &grad, &m, &v, &compute_copy})
    LT_CHECK(!t->defined() || t->is_contiguous(), "adamw_update of a strided " << t->describe());
  launch::AdamWArgs args;
  args.lr = step.lr;
  args.beta1 = step.beta1;
  args.beta2 = step.beta2;
  args.eps = step.eps;
  args.weight_decay = step.weight_decay;
  args.grad_scale = step.grad_scale;
  args.step = step.step;
  const bool has_copy = compute_copy.defined();
  launch::adamw_update(launch_dt(master), master.raw(), grad.raw(), m.raw(), v.raw(), n, args,
                       has_copy ? launch_dt(compute_copy) : launch::Dt::f32,
                       has_copy ? compute_copy.raw() : nullptr);
}

}  // namespace lt::cuda
