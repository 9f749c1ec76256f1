// Attention test inputs shared by the CUDA kernel tests (test_cuda_model_kernels,
// test_flash_attention): cases (lengths, heads, GQA, head dim, masks), the per-token causal
// orders and documents they imply, and q/k/v laid out as the attention layer holds them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cuda/attention_granules.h"
#include "core/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace lt::test::attention_cases {

enum class Masks { plain, docs, zigzag, zigzag_docs };

struct AttnCase {
  const char* name;
  std::int64_t batch, q_len, kv_len, heads, kv_heads, head_dim;
  bool causal;
  Masks masks;
};

// Global positions of cp rank r's local tokens under zigzag sharding: chunks r and 2 cp - 1 - r
// of 2 cp chunks of `local / 2` tokens (parallel/zigzag.h).
inline std::vector<std::int32_t> zigzag_order(std::int64_t rank, std::int64_t local,
                                              std::int64_t batch, std::int64_t cp = 2) {
  const std::int64_t chunk = local / 2;
  std::vector<std::int32_t> out;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < local; ++i) {
      const std::int64_t c = i < chunk ? rank : 2 * cp - 1 - rank;
      out.push_back(static_cast<std::int32_t>(c * chunk + i % chunk));
    }
  return out;
}

// Per-token documents: runs of 37 tokens of the (global) position.
inline std::vector<std::int32_t> docs_of(const std::vector<std::int32_t>& positions) {
  std::vector<std::int32_t> d;
  for (std::int32_t p : positions) d.push_back(p / 37);
  return d;
}

inline std::vector<std::int32_t> iota_positions(std::int64_t len, std::int64_t batch) {
  std::vector<std::int32_t> out;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < len; ++i) out.push_back(static_cast<std::int32_t>(i));
  return out;
}

struct AttnInputs {
  std::vector<std::int32_t> q_order, k_order, q_doc, k_doc;
  AttentionShape shape;
};

inline AttnInputs attention_inputs(const AttnCase& c) {
  AttnInputs in;
  AttentionShape& s = in.shape;
  s.batch = c.batch;
  s.q_len = c.q_len;
  s.kv_len = c.kv_len;
  s.heads = c.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.causal = c.causal;
  if (c.masks == Masks::zigzag || c.masks == Masks::zigzag_docs) {
    // Queries of rank 0 (sees keys up to its positions), keys of rank 1 (zigzag_cross) or of
    // rank 0 itself (zigzag_docs): some query rows see no key at all.
    in.q_order = zigzag_order(0, c.q_len, c.batch);
    in.k_order = zigzag_order(c.masks == Masks::zigzag ? 1 : 0, c.kv_len, c.batch);
    s.q_order = in.q_order;
    s.k_order = in.k_order;
  }
  if (c.masks == Masks::docs || c.masks == Masks::zigzag_docs) {
    in.q_doc = docs_of(in.q_order.empty() ? iota_positions(c.q_len, c.batch) : in.q_order);
    in.k_doc = docs_of(in.k_order.empty() ? iota_positions(c.kv_len, c.batch) : in.k_order);
    s.q_doc = in.q_doc;
    s.k_doc = in.k_doc;
  }
  return in;
}

// q, k, v as column blocks of one fused [tokens, (H + 2 Hkv) D] tensor when the lengths agree
// (as the attention layer holds them), else q alone and k/v fused.
struct Qkv {
  Tensor q_full, kv_full, q, k, v;
};
inline Qkv make_qkv(const AttnCase& c, DType dt, std::uint64_t seed, Device device) {
  const std::int64_t hd = c.head_dim, qw = c.heads * hd, kw = c.kv_heads * hd;
  Qkv t;
  if (c.q_len == c.kv_len) {
    t.q_full = random_tensor(Shape{c.batch * c.q_len, qw + 2 * kw}, dt, seed, device);
    t.q = t.q_full.columns(0, qw);
    t.k = t.q_full.columns(qw, kw);
    t.v = t.q_full.columns(qw + kw, kw);
  } else {
    t.q_full = random_tensor(Shape{c.batch * c.q_len, qw}, dt, seed, device);
    t.kv_full = random_tensor(Shape{c.batch * c.kv_len, 2 * kw}, dt, seed + 1, device);
    t.q = t.q_full;
    t.k = t.kv_full.columns(0, kw);
    t.v = t.kv_full.columns(kw, kw);
  }
  return t;
}

// The shape, masks and granules of a case in a raw launcher's AttentionArgs (core/cuda's
// launch::AttentionArgs, or the emulated backend's): everything but the dtypes and the q/k/v
// pointers and strides, which the caller sets. The vectors must outlive the arguments.
template <class Args>
void fill_attention_args(Args& a, const AttnCase& c, const AttnInputs& masks,
                         const std::vector<std::int32_t>& q_granules,
                         const std::vector<std::int32_t>& k_granules) {
  a.batch = c.batch;
  a.q_len = c.q_len;
  a.kv_len = c.kv_len;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.head_dim = c.head_dim;
  a.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  a.causal = c.causal;
  a.q_order = masks.q_order.empty() ? nullptr : masks.q_order.data();
  a.k_order = masks.k_order.empty() ? nullptr : masks.k_order.data();
  a.q_doc = masks.q_doc.empty() ? nullptr : masks.q_doc.data();
  a.k_doc = masks.k_doc.empty() ? nullptr : masks.k_doc.data();
  a.q_granules = q_granules.data();
  a.k_granules = k_granules.data();
}

}  // namespace lt::test::attention_cases
