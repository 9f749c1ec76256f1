// The operations layers are built from. Each dispatches on the device of its tensors to the CPU
// kernels (core/cpu) or, in a CUDA build, the CUDA kernels (core/cuda); the tensors of one call
// must share a device (only `copy` crosses devices). Floating tensors may be f32, bf16 or f64 (f64
// is for reference runs and gradient checks); arithmetic on bf16 happens in fp32. Every reduction
// has a fixed order, so results do not depend on the thread count (nor, on CUDA, on the device).
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace lt {

// Threads the CPU kernels use (OpenMP); BLAS calls run single-threaded inside them.
void set_num_threads(int threads);
int num_threads();

// C = alpha * op(A) * op(B) + beta * C for 2D (possibly row-strided) tensors. A and B share a
// dtype; C has it too, or is f32 when A and B are bf16 (fp32 accumulation, e.g. into gradients).
void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
            double alpha = 1.0, double beta = 0.0);
// Whether the CPU BLAS multiplies bf16 natively. When it does not (Debian's OpenBLAS has no
// cblas_sbgemm), every bf16 matmul widens both operands to fp32 copies in workspace for the
// duration of the call; the memory model accounts for them.
bool cpu_bf16_gemm_is_native();

// dst = src with dtype conversion (f32, bf16, f64); 2D strided views allowed. src and dst may
// live on different devices (staged through a contiguous buffer when layouts or dtypes differ).
void copy(const Tensor& src, const Tensor& dst);
// A contiguous copy of t on `device`, same dtype and category.
Tensor to_device(const Tensor& t, Device device);
void fill(const Tensor& t, double value);
// dst += alpha * src (contiguous, same shape; dtypes may differ).
void add(const Tensor& dst, const Tensor& src, double alpha = 1.0);
void scale(const Tensor& t, double factor);
// y[r, :] += bias for every row r (2D y, row-strided ok).
void add_bias(const Tensor& y, const Tensor& bias);
// dbias += sum over rows of dy, in a fixed order.
void bias_backward(const Tensor& dy, const Tensor& dbias);
// Sum of squares in double, in a fixed order.
double sum_squares(const Tensor& t);

// out[t, :] = table[tokens[t], :]
void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out);
// dtable[tokens[t], :] += dout[t, :], tokens visited in order.
void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable);

// Vocab-parallel embedding: `table` holds rows for token ids [vocab_offset, vocab_offset + rows).
// Tokens outside the shard give zero rows (the tensor-parallel group sums the shards), and their
// gradients are left to the shard that owns them.
void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out);
void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable);

// y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps); rstd is f32 [rows] (f64 for f64 x).
void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd);
// dx (= or += when accumulate) and dweight += (f32/f64 gradient buffer).
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx);

// Rotates pairs (i, i + head_dim/2) of every head of x [rows, heads*head_dim] in place by
// angle position * inv_freq[i]; `inverse` rotates back (the backward of the rotation).
// cos/sin tables are f32 [max_position, head_dim/2].
void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse);

// gate_up [rows, 2F] = [gate | up]; out [rows, F] = silu(gate) * up.
void swiglu_forward(const Tensor& gate_up, const Tensor& out);
void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

// Blockwise causal attention with online softmax (never an S x S matrix).
struct AttentionShape {
  std::int64_t batch = 1;
  std::int64_t q_len = 0;   // query tokens per sequence
  std::int64_t kv_len = 0;  // key/value tokens per sequence
  std::int64_t heads = 1;
  std::int64_t kv_heads = 1;
  std::int64_t head_dim = 0;
  double scale = 0.0;  // 0: 1 / sqrt(head_dim)
  bool causal = true;
  // Causal order of every token ([batch * len]); key j is visible to query i when
  // k_order[j] <= q_order[i]. Empty: 0..len-1.
  std::span<const std::int32_t> q_order;
  std::span<const std::int32_t> k_order;
  // Document of every token; attention never crosses documents. Empty: one document.
  std::span<const std::int32_t> q_doc;
  std::span<const std::int32_t> k_doc;
};
// q [batch*q_len, heads*head_dim], k/v [batch*kv_len, kv_heads*head_dim] (row-strided views ok),
// out like q (or f32 for bf16 q), lse f32 (f64 for f64 q) [batch, heads, q_len] (natural-log sum of
// exp of the scaled scores).
void attention_forward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& out, const Tensor& lse);
// Recomputes the scores; writes dq, dk, dv (overwritten).
void attention_backward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);

// The CUDA attention backward: deterministic (the default: no atomics, the same bits every run)
// or FA2's faster atomic accumulation of dQ. Process-wide; the CPU backend is always
// deterministic.
void set_deterministic_attention(bool deterministic);

// Merges a partial attention result (part_out, part_lse: attention over another block of keys)
// into an accumulated one (out, lse) by log-sum-exp weighting. out/part_out [batch*q_len,
// heads*head_dim], lse/part_lse [batch, heads, q_len]; out and lse are updated in place.
void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim);

// Softmax cross-entropy over logits [rows, vocab] (f32 or f64). Returns sum_r weight[r] * loss[r].
// With `grad_scale` != 0, logits are overwritten with d(grad_scale * sum weight*loss)/dlogits.
// `predictions` (optional) gets the argmax of each row. Columns >= valid_vocab are padding.
double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab);

// Vocab-parallel cross-entropy, for a shard of the vocabulary: logits [rows, width] whose
// columns [0, valid) hold global token ids [vocab_offset, vocab_offset + valid). The caller
// reduces the per-row statistics across the shards between the passes (max, then sums), so the
// full-vocabulary logits never exist on one rank. Statistics are f64 spans of length rows.
// Pass 1: the shard's row max and its argmax (a global token id).
void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax);
// Pass 2, given the global row max: the shard's sum of exp(logit - max), and the target's logit
// when the target falls in this shard (0 otherwise).
void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit);
// Pass 3, given the global max, sum and target logit: returns sum_r weight[r] * loss[r] (the same
// on every shard) and, with grad_scale != 0, overwrites the shard's logits with the gradient of
// grad_scale * that sum (padding columns get 0).
double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale);

struct AdamWStep {
  double lr = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled, applied as lr * weight_decay * w
  std::int64_t step = 1;      // 1-based, for bias correction
  double grad_scale = 1.0;    // e.g. the clipping coefficient
};
// AdamW on a flat shard: master, grad, m, v share length (f32, or f64 for reference runs).
// When `compute_copy` is defined it receives the updated weights in its dtype.
void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy);

}  // namespace lt
