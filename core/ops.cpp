// Device dispatch: every op runs where its tensors live, on the CPU kernels (core/cpu) or, in a
// CUDA build, the CUDA ones (core/cuda). The tensors of one call must share a device; only `copy`
// crosses devices.
#include "core/ops.h"

#include <initializer_list>
#include <string>

#include "core/cpu/kernels.h"
#include "core/error.h"

#ifdef LT_HAVE_CUDA
#include "core/cuda/kernels.h"
#include "core/cuda/model_kernels.h"
// Returns the CUDA implementation's result (the op's tensors are on cuda).
#define LT_CUDA_OP(call) return cuda::call
#else
#define LT_CUDA_OP(call) throw Error("this build has no cuda backend")
#endif

namespace lt {
namespace {

// The device of the op's (defined) tensors; tensors on different devices are refused.
Device device_of(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    if (first == nullptr) {
      first = t;
      continue;
    }
    LT_CHECK(t->device() == first->device(),
             op << ": tensors on different devices: " << first->describe() << " on "
                << device_name(first->device()) << ", " << t->describe() << " on "
                << device_name(t->device()));
  }
  return first == nullptr ? Device::cpu : first->device();
}

bool on_cuda(const char* op, std::initializer_list<const Tensor*> tensors) {
  return device_of(op, tensors) == Device::cuda;
}

// A contiguous copy of t on `device` in `category`.
Tensor contiguous_on(const Tensor& t, Device device, MemCategory category) {
  Tensor source = t;
  if (!t.is_contiguous()) {
    source = Tensor::empty(t.shape(), t.dtype(), MemCategory::workspace, t.device());
    copy(t, source);
  }
  Tensor out = Tensor::empty(t.shape(), t.dtype(), category, device);
  copy_bytes(out.raw(), device, source.raw(), source.device(), source.nbytes());
  return out;
}

}  // namespace

void set_num_threads(int threads) {
  cpu::set_num_threads(threads);
}
int num_threads() {
  return cpu::num_threads();
}

bool cpu_bf16_gemm_is_native() {
#ifdef LT_HAVE_SBGEMM
  return true;
#else
  return false;
#endif
}

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
            double alpha, double beta) {
  if (on_cuda("matmul", {&a, &b, &c})) LT_CUDA_OP(matmul(a, trans_a, b, trans_b, c, alpha, beta));
  cpu::matmul(a, trans_a, b, trans_b, c, alpha, beta);
}

void copy(const Tensor& src, const Tensor& dst) {
  if (src.device() == dst.device()) {
    if (src.device() == Device::cuda) LT_CUDA_OP(copy(src, dst));
    cpu::copy(src, dst);
    return;
  }
  LT_CHECK(src.numel() == dst.numel(),
           "copy " << src.describe() << " on " << device_name(src.device()) << " -> "
                   << dst.describe() << " on " << device_name(dst.device()));
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    copy_bytes(dst.raw(), dst.device(), src.raw(), src.device(), src.nbytes());
    return;
  }
  // Move src as it is (contiguous, its dtype), then convert and lay out on dst's device.
  copy(contiguous_on(src, dst.device(), MemCategory::workspace), dst);
}

Tensor to_device(const Tensor& t, Device device) {
  return contiguous_on(t, device, t.category());
}

void fill(const Tensor& t, double value) {
  if (on_cuda("fill", {&t})) LT_CUDA_OP(fill(t, value));
  cpu::fill(t, value);
}

void add(const Tensor& dst, const Tensor& src, double alpha) {
  if (on_cuda("add", {&dst, &src})) LT_CUDA_OP(add(dst, src, alpha));
  cpu::add(dst, src, alpha);
}

void scale(const Tensor& t, double factor) {
  if (on_cuda("scale", {&t})) LT_CUDA_OP(scale(t, factor));
  cpu::scale(t, factor);
}

void add_bias(const Tensor& y, const Tensor& bias) {
  if (on_cuda("add_bias", {&y, &bias})) LT_CUDA_OP(add_bias(y, bias));
  cpu::add_bias(y, bias);
}

void bias_backward(const Tensor& dy, const Tensor& dbias) {
  if (on_cuda("bias_backward", {&dy, &dbias})) LT_CUDA_OP(bias_backward(dy, dbias));
  cpu::bias_backward(dy, dbias);
}

double sum_squares(const Tensor& t) {
  if (on_cuda("sum_squares", {&t})) LT_CUDA_OP(sum_squares(t));
  return cpu::sum_squares(t);
}

void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out) {
  if (on_cuda("embedding_forward", {&table, &out}))
    LT_CUDA_OP(embedding_forward(table, tokens, out));
  cpu::embedding_forward(table, tokens, out);
}

void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable) {
  if (on_cuda("embedding_backward", {&dout, &dtable}))
    LT_CUDA_OP(embedding_backward(dout, tokens, dtable));
  cpu::embedding_backward(dout, tokens, dtable);
}

void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out) {
  if (on_cuda("embedding_shard_forward", {&table, &out}))
    LT_CUDA_OP(embedding_shard_forward(table, vocab_offset, tokens, out));
  cpu::embedding_shard_forward(table, vocab_offset, tokens, out);
}

void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable) {
  if (on_cuda("embedding_shard_backward", {&dout, &dtable}))
    LT_CUDA_OP(embedding_shard_backward(dout, vocab_offset, tokens, dtable));
  cpu::embedding_shard_backward(dout, vocab_offset, tokens, dtable);
}

void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd) {
  if (on_cuda("rmsnorm_forward", {&x, &weight, &y, &rstd}))
    LT_CUDA_OP(rmsnorm_forward(x, weight, eps, y, rstd));
  cpu::rmsnorm_forward(x, weight, eps, y, rstd);
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx) {
  if (on_cuda("rmsnorm_backward", {&dy, &x, &weight, &rstd, &dx, &dweight}))
    LT_CUDA_OP(rmsnorm_backward(dy, x, weight, rstd, dx, dweight, accumulate_dx));
  cpu::rmsnorm_backward(dy, x, weight, rstd, dx, dweight, accumulate_dx);
}

void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse) {
  if (on_cuda("rope_apply", {&x, &cos_table, &sin_table}))
    LT_CUDA_OP(rope_apply(x, head_dim, positions, cos_table, sin_table, inverse));
  cpu::rope_apply(x, head_dim, positions, cos_table, sin_table, inverse);
}

void swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  if (on_cuda("swiglu_forward", {&gate_up, &out})) LT_CUDA_OP(swiglu_forward(gate_up, out));
  cpu::swiglu_forward(gate_up, out);
}

void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  if (on_cuda("swiglu_backward", {&dout, &gate_up, &dgate_up}))
    LT_CUDA_OP(swiglu_backward(dout, gate_up, dgate_up));
  cpu::swiglu_backward(dout, gate_up, dgate_up);
}

void attention_forward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& out, const Tensor& lse) {
  if (on_cuda("attention_forward", {&q, &k, &v, &out, &lse}))
    LT_CUDA_OP(attention_forward(shape, q, k, v, out, lse));
  cpu::attention_forward(shape, q, k, v, out, lse);
}

void attention_backward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  if (on_cuda("attention_backward", {&q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv}))
    LT_CUDA_OP(attention_backward(shape, q, k, v, out, lse, dout, dq, dk, dv));
  cpu::attention_backward(shape, q, k, v, out, lse, dout, dq, dk, dv);
}

void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim) {
  if (on_cuda("attention_merge", {&out, &lse, &part_out, &part_lse}))
    LT_CUDA_OP(attention_merge(out, lse, part_out, part_lse, heads, head_dim));
  cpu::attention_merge(out, lse, part_out, part_lse, heads, head_dim);
}

double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab) {
  if (on_cuda("softmax_cross_entropy", {&logits}))
    LT_CUDA_OP(
        softmax_cross_entropy(logits, targets, weights, grad_scale, predictions, valid_vocab));
  return cpu::softmax_cross_entropy(logits, targets, weights, grad_scale, predictions, valid_vocab);
}

void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax) {
  if (on_cuda("cross_entropy_shard_max", {&logits}))
    LT_CUDA_OP(cross_entropy_shard_max(logits, valid, vocab_offset, row_max, row_argmax));
  cpu::cross_entropy_shard_max(logits, valid, vocab_offset, row_max, row_argmax);
}

void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit) {
  if (on_cuda("cross_entropy_shard_sums", {&logits}))
    LT_CUDA_OP(cross_entropy_shard_sums(logits, valid, vocab_offset, row_max, targets, sum_exp,
                                        target_logit));
  cpu::cross_entropy_shard_sums(logits, valid, vocab_offset, row_max, targets, sum_exp,
                                target_logit);
}

double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale) {
  if (on_cuda("cross_entropy_shard_finish", {&logits}))
    LT_CUDA_OP(cross_entropy_shard_finish(logits, valid, vocab_offset, row_max, sum_exp,
                                          target_logit, targets, weights, grad_scale));
  return cpu::cross_entropy_shard_finish(logits, valid, vocab_offset, row_max, sum_exp,
                                         target_logit, targets, weights, grad_scale);
}

void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy) {
  if (on_cuda("adamw_update", {&master, &grad, &m, &v, &compute_copy}))
    LT_CUDA_OP(adamw_update(master, grad, m, v, step, compute_copy));
  cpu::adamw_update(master, grad, m, v, step, compute_copy);
}

void set_deterministic_attention(bool deterministic) {
#ifdef LT_HAVE_CUDA
  cuda::set_deterministic_attention(deterministic);
#else
  (void)deterministic;
#endif
}

}  // namespace lt
