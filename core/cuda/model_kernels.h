// CUDA implementations of the model ops of core/ops.h (same contracts as core/cpu/kernels.h):
// embedding, RMSNorm, RoPE, SwiGLU, attention, attention merge and cross-entropy. Every tensor
// must live on Device::cuda; host spans (tokens, positions, targets, weights, orders, documents,
// statistics) stay host memory and are copied to and from device workspace here. Results that
// come back to host spans (losses, predictions, row statistics) are synchronous.
//
// No CUDA headers: ops.cpp (g++) includes this. The kernels are in core/cuda/model_*.cu behind
// the raw launchers of core/cuda/model_launch.h.
#pragma once

#include <cstdint>
#include <span>

#include "core/ops.h"

namespace lt::cuda {

void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out);
void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable);
void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out);
void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable);
void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd);
void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx);
void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse);
void swiglu_forward(const Tensor& gate_up, const Tensor& out);
void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);
void attention_forward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& out, const Tensor& lse);
void attention_backward(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv);
// bf16 attention with head_dim 64 or 128 runs the tensor-core flash kernels
// (core/cuda/flash_attention.h) unless switched off here; everything else, and everything while
// it is off, runs the simple CUDA-core kernels. Tests and benchmarks compare the two.
void set_flash_attention(bool enabled);
bool flash_attention_enabled();
// The flash backward without atomics (default: the same bits every run) or FA2's atomic
// accumulation of dQ (faster: one pass over K/V; dQ's last bits vary between runs).
void set_deterministic_attention(bool deterministic);
bool deterministic_attention();
// Attention calls (forward and backward) that ran the flash kernels in this process so far.
std::int64_t flash_attention_calls();
// Whether attention_forward / attention_backward with these tensors run the flash kernels.
bool flash_attention_forward_applies(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& out);
bool flash_attention_backward_applies(const AttentionShape& shape, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& dout, const Tensor& dq,
                                      const Tensor& dk, const Tensor& dv);
void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim);
double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab);
void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax);
void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit);
double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale);

}  // namespace lt::cuda
