// Device dispatch: every op runs where its tensors live. This build has the CPU backend; a tensor
// on another device is refused with a clear error.
#include "core/ops.h"

#include "core/cpu/kernels.h"
#include "core/error.h"

namespace lt {
namespace {

void require_cpu(const Tensor& t, const char* op) {
  LT_CHECK(!t.defined() || t.device() == Device::cpu,
           op << ": tensor on " << device_name(t.device())
              << " but this build has only the cpu backend");
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
  require_cpu(a, "matmul");
  cpu::matmul(a, trans_a, b, trans_b, c, alpha, beta);
}

void copy(const Tensor& src, const Tensor& dst) {
  require_cpu(src, "copy");
  cpu::copy(src, dst);
}

void fill(const Tensor& t, double value) {
  require_cpu(t, "fill");
  cpu::fill(t, value);
}

void add(const Tensor& dst, const Tensor& src, double alpha) {
  require_cpu(dst, "add");
  cpu::add(dst, src, alpha);
}

void scale(const Tensor& t, double factor) {
  require_cpu(t, "scale");
  cpu::scale(t, factor);
}

void add_bias(const Tensor& y, const Tensor& bias) {
  require_cpu(y, "add_bias");
  cpu::add_bias(y, bias);
}

void bias_backward(const Tensor& dy, const Tensor& dbias) {
  require_cpu(dy, "bias_backward");
  cpu::bias_backward(dy, dbias);
}

double sum_squares(const Tensor& t) {
  require_cpu(t, "sum_squares");
  return cpu::sum_squares(t);
}

void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out) {
  require_cpu(table, "embedding_forward");
  cpu::embedding_forward(table, tokens, out);
}

void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable) {
  require_cpu(dout, "embedding_backward");
  cpu::embedding_backward(dout, tokens, dtable);
}

void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out) {
  require_cpu(table, "embedding_shard_forward");
  cpu::embedding_shard_forward(table, vocab_offset, tokens, out);
}

void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable) {
  require_cpu(dout, "embedding_shard_backward");
  cpu::embedding_shard_backward(dout, vocab_offset, tokens, dtable);
}

void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd) {
  require_cpu(x, "rmsnorm_forward");
  cpu::rmsnorm_forward(x, weight, eps, y, rstd);
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx) {
  require_cpu(x, "rmsnorm_backward");
  cpu::rmsnorm_backward(dy, x, weight, rstd, dx, dweight, accumulate_dx);
}

void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse) {
  require_cpu(x, "rope_apply");
  cpu::rope_apply(x, head_dim, positions, cos_table, sin_table, inverse);
}

void swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  require_cpu(gate_up, "swiglu_forward");
  cpu::swiglu_forward(gate_up, out);
}

void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  require_cpu(dout, "swiglu_backward");
  cpu::swiglu_backward(dout, gate_up, dgate_up);
}

void attention_forward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& out, const Tensor& lse) {
  require_cpu(q, "attention_forward");
  cpu::attention_forward(shape, q, k, v, out, lse);
}

void attention_backward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  require_cpu(q, "attention_backward");
  cpu::attention_backward(shape, q, k, v, out, lse, dout, dq, dk, dv);
}

void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim) {
  require_cpu(out, "attention_merge");
  cpu::attention_merge(out, lse, part_out, part_lse, heads, head_dim);
}

double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab) {
  require_cpu(logits, "softmax_cross_entropy");
  return cpu::softmax_cross_entropy(logits, targets, weights, grad_scale, predictions, valid_vocab);
}

void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax) {
  require_cpu(logits, "cross_entropy_shard_max");
  cpu::cross_entropy_shard_max(logits, valid, vocab_offset, row_max, row_argmax);
}

void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit) {
  require_cpu(logits, "cross_entropy_shard_sums");
  cpu::cross_entropy_shard_sums(logits, valid, vocab_offset, row_max, targets, sum_exp,
                                target_logit);
}

double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale) {
  require_cpu(logits, "cross_entropy_shard_finish");
  return cpu::cross_entropy_shard_finish(logits, valid, vocab_offset, row_max, sum_exp,
                                         target_logit, targets, weights, grad_scale);
}

void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy) {
  require_cpu(master, "adamw_update");
  cpu::adamw_update(master, grad, m, v, step, compute_copy);
}

}  // namespace lt
