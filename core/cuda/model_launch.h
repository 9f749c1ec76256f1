// Launchers of the CUDA model kernels (embedding, RMSNorm, RoPE, SwiGLU, attention, attention
// merge, cross-entropy): raw device pointers, element strides and sizes. This header is plain
// C++17 with no CUDA and no project headers, so that both nvcc (model_*.cu) and the C++20 host
// wrappers (model_ops.cpp, which check shapes and dtypes on lt::Tensor) can include it.
//
// Every launcher runs on the default stream (see stream()); host copies are stream-ordered and
// the device-to-host ones synchronize. Launch errors throw lt::Error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lt::cuda::launch {

// Floating element types of the kernels. Statistics (RMSNorm rstd, attention LSE) are f32 for
// f32/bf16 data and f64 for f64 data; "compute" is fp32 for bf16 and the type itself otherwise.
enum class Dt : int { f32 = 0, bf16 = 1, f64 = 2 };

inline std::size_t dt_size(Dt d) {
  return d == Dt::f32 ? 4 : d == Dt::bf16 ? 2 : 8;
}
inline std::size_t compute_size(Dt d) {
  return d == Dt::f64 ? 8 : 4;
}

// ---- stream and copies (model_util.cu) ----
// Host-to-device copy of pageable memory, ordered on the kernels' stream; the source may be
// reused as soon as it returns.
void copy_to_device(void* dst, const void* src, std::size_t bytes);
// Device-to-host copy; returns when the data is on the host (synchronizes the stream).
void copy_to_host(void* dst, const void* src, std::size_t bytes);
void zero_device(void* dst, std::size_t bytes);
// Largest dynamic shared memory a block may opt into on the current device.
std::size_t max_shared_memory_per_block();

// ---- embedding (model_embedding.cu) ----
// out[t] = table[tokens[t] - vocab_offset] when inside [0, table_rows), else zeros. elem_size is
// the byte size of one element (the copy is dtype-agnostic). Strides in elements.
void embedding_forward(std::size_t elem_size, const void* table, std::int64_t table_rows,
                       std::int64_t table_ld, std::int64_t dim, const std::int32_t* tokens,
                       std::int64_t n_tokens, std::int64_t vocab_offset, void* out,
                       std::int64_t out_ld);
// dtable[row[s]] += dout[positions[k]] for k in [seg_start[s], seg_start[s + 1]), k ascending
// (positions ascending within a segment: token order), each add rounded to dtable's dtype as
// the CPU does. One thread per (segment, column): no atomics.
void embedding_backward(Dt dout_dt, const void* dout, std::int64_t dout_ld, Dt dtable_dt,
                        void* dtable, std::int64_t dtable_ld, std::int64_t dim,
                        const std::int32_t* positions, const std::int32_t* seg_start,
                        const std::int32_t* seg_row, std::int64_t n_segments);

// ---- RMSNorm, RoPE, SwiGLU (model_rowwise.cu) ----
void rmsnorm_forward(Dt dt, const void* x, std::int64_t ldx, const void* weight, void* y,
                     std::int64_t ldy, void* rstd, std::int64_t rows, std::int64_t dim, double eps);
// Rows per partial sum of the weight gradient (fixed by the row count alone, so the reduction
// order does not depend on the device).
inline std::int64_t rmsnorm_chunk_rows(std::int64_t rows) {
  const std::int64_t target_chunks = 1024;
  const std::int64_t per = (rows + target_chunks - 1) / target_chunks;
  return per < 8 ? 8 : per;
}
inline std::int64_t rmsnorm_chunks(std::int64_t rows) {
  const std::int64_t c = rmsnorm_chunk_rows(rows);
  return (rows + c - 1) / c;
}
// partial: rmsnorm_chunks(rows) * dim compute-type elements of device scratch.
void rmsnorm_backward(Dt dt, const void* dy, std::int64_t ldg, const void* x, std::int64_t ldx,
                      const void* weight, const void* rstd, void* dx, std::int64_t ldd,
                      bool accumulate_dx, Dt dweight_dt, void* dweight, std::int64_t rows,
                      std::int64_t dim, void* partial);
// cos/sin: f32 [max_pos, head_dim/2] with row stride table_ld. positions: device, [rows].
void rope_apply(Dt dt, void* x, std::int64_t ldx, std::int64_t rows, std::int64_t width,
                std::int64_t head_dim, const std::int32_t* positions, const float* cos_table,
                const float* sin_table, std::int64_t table_ld, bool inverse);
void swiglu_forward(Dt dt, const void* gate_up, std::int64_t ldg, void* out, std::int64_t ldo,
                    std::int64_t rows, std::int64_t f);
void swiglu_backward(Dt dt, const void* dout, std::int64_t ldd, const void* gate_up,
                     std::int64_t ldg, void* dgate_up, std::int64_t ldr, std::int64_t rows,
                     std::int64_t f);

// ---- attention merge (model_merge.cu) ----
// lse_dt is f32 or f64 (both lse tensors). rows = batch * q_len.
void attention_merge(Dt out_dt, void* out, std::int64_t ldo, Dt part_dt, const void* part,
                     std::int64_t ldp, Dt lse_dt, void* lse, const void* part_lse,
                     std::int64_t batch, std::int64_t q_len, std::int64_t heads,
                     std::int64_t head_dim);

// ---- attention (model_attention.cu) ----
// Per-token causal orders and documents live on the device; a null pointer means "the index
// within the sequence" for orders and "one document" for docs. Granules summarize every run of
// kAttnGranule consecutive tokens of a sequence as {order_min, order_max, doc_min, doc_max}
// ([batch][ceil(len / kAttnGranule)] int32 quadruples) so that blocks skip invisible tiles.
constexpr std::int64_t kAttnGranule = 32;
struct AttentionArgs {
  Dt dt = Dt::f32;      // q, k, v (and, in backward, out, dout, dq, dk, dv)
  Dt out_dt = Dt::f32;  // forward output: dt, or f32 for bf16 inputs
  std::int64_t batch = 1, q_len = 0, kv_len = 0, heads = 1, kv_heads = 1, head_dim = 0;
  double scale = 0.0;  // resolved (never 0)
  bool causal = true;
  const std::int32_t* q_order = nullptr;
  const std::int32_t* k_order = nullptr;
  const std::int32_t* q_doc = nullptr;
  const std::int32_t* k_doc = nullptr;
  const std::int32_t* q_granules = nullptr;
  const std::int32_t* k_granules = nullptr;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  std::int64_t ldq = 0, ldk = 0, ldv = 0;
  // bf16 with head_dim 64 or 128 runs the tensor-core flash kernels (flash_attention.h) when
  // this is set and the operands qualify; otherwise the simple CUDA-core kernels.
  bool allow_flash = true;
};
// Largest head_dim the kernels take.
constexpr std::int64_t kAttnMaxHeadDim = 256;
// out [batch*q_len, heads*head_dim] (out_dt), lse [batch, heads, q_len] (f32, f64 for f64).
void attention_forward(const AttentionArgs& a, void* out, std::int64_t ldo, void* lse);
// delta_scratch: batch*heads*q_len compute-type elements of device scratch. dq_accum_scratch
// (nullable): when the flash kernels run, batch*q_len*heads*head_dim floats of device scratch
// select their atomic-dQ backward (flash_attention.h); null keeps every backward deterministic.
void attention_backward(const AttentionArgs& a, const void* out, std::int64_t ldo, const void* lse,
                        const void* dout, std::int64_t ld_dout, void* dq, std::int64_t ld_dq,
                        void* dk, std::int64_t ld_dk, void* dv, std::int64_t ld_dv,
                        void* delta_scratch, void* dq_accum_scratch = nullptr);

// ---- cross-entropy (model_cross_entropy.cu) ----
// dt is f32 or f64. Per row: loss[r] = (lse - logit[target]) in the compute type, widened to
// double (unweighted; the host weights and sums in row order); pred[r] (nullable) the argmax.
// With grad_scale != 0 the row is overwritten by the gradient of grad_scale * weight * loss.
void softmax_cross_entropy(Dt dt, void* logits, std::int64_t ld, std::int64_t rows,
                           std::int64_t width, std::int64_t valid, const std::int32_t* targets,
                           const float* weights, double grad_scale, double* loss,
                           std::int32_t* pred);
void cross_entropy_shard_max(Dt dt, const void* logits, std::int64_t ld, std::int64_t rows,
                             std::int64_t valid, std::int64_t vocab_offset, double* row_max,
                             std::int32_t* row_argmax);
void cross_entropy_shard_sums(Dt dt, const void* logits, std::int64_t ld, std::int64_t rows,
                              std::int64_t valid, std::int64_t vocab_offset, const double* row_max,
                              const std::int32_t* targets, double* sum_exp, double* target_logit);
void cross_entropy_shard_grad(Dt dt, void* logits, std::int64_t ld, std::int64_t rows,
                              std::int64_t width, std::int64_t valid, std::int64_t vocab_offset,
                              const double* row_max, const double* sum_exp,
                              const std::int32_t* targets, const float* weights, double grad_scale);

}  // namespace lt::cuda::launch
