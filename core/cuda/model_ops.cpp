// Host side of the CUDA model kernels: the shape and dtype checks of the CPU backend, host spans
// staged into device workspace, and the calls to the launchers of model_launch.h.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/cuda/attention_granules.h"
#include "core/cuda/flash_attention.h"
#include "core/cuda/model_kernels.h"
#include "core/cuda/model_launch.h"
#include "core/cuda/tensor_args.h"
#include "core/error.h"

namespace lt::cuda {
namespace {

using launch::Dt;

// Statistics (rstd, LSE) are f32, or f64 for f64 data.
DType stat_dtype(DType data) {
  return data == DType::f64 ? DType::f64 : DType::f32;
}

void require_cuda(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    LT_CHECK(t->defined() && t->device() == Device::cuda,
             op << ": " << (t->defined() ? t->describe() : std::string("undefined tensor"))
                << " is not on the cuda device");
  }
}

// Elements between rows of a 2D view (or of a contiguous tensor seen as [dim(0), rest]).
std::int64_t ld(const Tensor& t) {
  return t.row_stride();
}

// Host spans packed into one device workspace allocation, each piece 16-byte aligned.
class Staging {
 public:
  // Returns the piece's offset; the device pointer comes from at() after upload().
  template <class T>
  std::size_t add(std::span<const T> s) {
    const std::size_t off = (bytes_.size() + 15) / 16 * 16;
    bytes_.resize(off + s.size_bytes());
    if (!s.empty()) std::memcpy(bytes_.data() + off, s.data(), s.size_bytes());
    return off;
  }
  std::size_t reserve(std::size_t bytes) {
    const std::size_t off = (bytes_.size() + 15) / 16 * 16;
    bytes_.resize(off + bytes);
    return off;
  }
  void upload() {
    if (bytes_.empty()) return;
    const auto words = static_cast<std::int64_t>((bytes_.size() + 7) / 8);
    device_ = Tensor::empty(Shape{words}, DType::f64, MemCategory::workspace, Device::cuda);
    launch::copy_to_device(device_.raw(), bytes_.data(), bytes_.size());
  }
  template <class T>
  T* at(std::size_t off) const {
    return reinterpret_cast<T*>(static_cast<char*>(device_.raw()) + off);
  }

 private:
  std::vector<unsigned char> bytes_;
  Tensor device_;
};

void check_tokens(std::span<const std::int32_t> tokens, std::int64_t vocab) {
  for (std::int32_t id : tokens) {
    LT_CHECK(id >= 0 && id < vocab, "token " << id << " outside vocabulary of " << vocab);
  }
}

// ---------------------------------------------------------------- attention helpers

void check_attention(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& out, const Tensor& lse) {
  LT_CHECK(a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim > 0,
           "attention heads " << a.heads << " / kv heads " << a.kv_heads);
  LT_CHECK(q.rank() == 2 && q.dim(0) == a.batch * a.q_len && q.dim(1) == a.heads * a.head_dim,
           "attention q " << q.describe() << " for batch " << a.batch << " x " << a.q_len);
  LT_CHECK(k.rank() == 2 && k.dim(0) == a.batch * a.kv_len && k.dim(1) == a.kv_heads * a.head_dim &&
               v.shape() == k.shape(),
           "attention k/v " << k.describe() << " " << v.describe());
  LT_CHECK(out.shape() == q.shape() && lse.numel() == a.batch * a.heads * a.q_len,
           "attention out " << out.describe() << " lse " << lse.describe());
  LT_CHECK(q.dtype() == k.dtype() && k.dtype() == v.dtype(), "attention q/k/v dtypes differ");
  LT_CHECK(lse.dtype() == stat_dtype(q.dtype()) && lse.is_contiguous(),
           "attention lse " << lse.describe() << " for " << q.describe());
  const auto n_q = static_cast<std::size_t>(a.batch * a.q_len);
  const auto n_k = static_cast<std::size_t>(a.batch * a.kv_len);
  LT_CHECK((a.q_order.empty() || a.q_order.size() == n_q) &&
               (a.k_order.empty() || a.k_order.size() == n_k) &&
               (a.q_doc.empty() || a.q_doc.size() == n_q) &&
               (a.k_doc.empty() || a.k_doc.size() == n_k),
           "attention order/doc spans do not match the token counts");
}

// Stages the orders, documents and granules; fills the pointers of `args`.
void stage_attention(const AttentionShape& a, Staging& staging, launch::AttentionArgs& args) {
  const std::size_t qo = staging.add(a.q_order), ko = staging.add(a.k_order);
  const std::size_t qd = staging.add(a.q_doc), kd = staging.add(a.k_doc);
  const std::vector<std::int32_t> qg =
      attention_granules(a.q_order, a.q_doc, a.batch, a.q_len, launch::kAttnGranule);
  const std::vector<std::int32_t> kg =
      attention_granules(a.k_order, a.k_doc, a.batch, a.kv_len, launch::kAttnGranule);
  const std::size_t qgo = staging.add(std::span<const std::int32_t>(qg));
  const std::size_t kgo = staging.add(std::span<const std::int32_t>(kg));
  staging.upload();
  args.q_order = a.q_order.empty() ? nullptr : staging.at<const std::int32_t>(qo);
  args.k_order = a.k_order.empty() ? nullptr : staging.at<const std::int32_t>(ko);
  args.q_doc = a.q_doc.empty() ? nullptr : staging.at<const std::int32_t>(qd);
  args.k_doc = a.k_doc.empty() ? nullptr : staging.at<const std::int32_t>(kd);
  args.q_granules = qg.empty() ? nullptr : staging.at<const std::int32_t>(qgo);
  args.k_granules = kg.empty() ? nullptr : staging.at<const std::int32_t>(kgo);
}

launch::AttentionArgs attention_args(const AttentionShape& a, const Tensor& q, const Tensor& k,
                                     const Tensor& v) {
  launch::AttentionArgs args;
  args.dt = launch_dt(q);
  args.out_dt = args.dt;
  args.batch = a.batch;
  args.q_len = a.q_len;
  args.kv_len = a.kv_len;
  args.heads = a.heads;
  args.kv_heads = a.kv_heads;
  args.head_dim = a.head_dim;
  args.scale = a.scale != 0.0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  args.causal = a.causal;
  args.q = q.raw();
  args.k = k.raw();
  args.v = v.raw();
  args.ldq = ld(q);
  args.ldk = ld(k);
  args.ldv = ld(v);
  args.allow_flash = flash_attention_enabled();
  return args;
}

// ---------------------------------------------------------------- cross-entropy helpers

void check_logits(const Tensor& logits, std::int64_t valid, std::size_t rows_given) {
  LT_CHECK(logits.rank() == 2 && valid >= 0 && valid <= logits.dim(1) &&
               static_cast<std::int64_t>(rows_given) == logits.dim(0),
           "vocab-parallel cross-entropy on " << logits.describe() << " with " << valid
                                              << " valid columns and " << rows_given << " rows");
  LT_CHECK(logits.dtype() == DType::f32 || logits.dtype() == DType::f64,
           "cross-entropy logits must be f32 or f64, got " << logits.describe());
}

}  // namespace

// ---------------------------------------------------------------- embedding

void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out) {
  check_tokens(tokens, table.dim(0));
  cuda::embedding_shard_forward(table, 0, tokens, out);
}

void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable) {
  check_tokens(tokens, dtable.dim(0));
  cuda::embedding_shard_backward(dout, 0, tokens, dtable);
}

void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out) {
  require_cuda("embedding_shard_forward", {&table, &out});
  LT_CHECK(table.rank() == 2 && out.rank() == 2, "embedding_shard_forward " << table.describe());
  const std::int64_t rows = table.dim(0), dim = table.dim(1);
  LT_CHECK(out.dim(0) == static_cast<std::int64_t>(tokens.size()) && out.dim(1) == dim &&
               out.dtype() == table.dtype() && out.is_contiguous(),
           "embedding_shard_forward " << table.describe() << " -> " << out.describe());
  launch_dt(table);
  if (tokens.empty()) return;
  Staging staging;
  const std::size_t off = staging.add(tokens);
  staging.upload();
  launch::embedding_forward(dtype_size(table.dtype()), table.raw(), rows, ld(table), dim,
                            staging.at<const std::int32_t>(off),
                            static_cast<std::int64_t>(tokens.size()), vocab_offset, out.raw(),
                            ld(out));
}

void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable) {
  require_cuda("embedding_shard_backward", {&dout, &dtable});
  LT_CHECK(dout.rank() == 2 && dtable.rank() == 2,
           "embedding_shard_backward " << dout.describe() << " " << dtable.describe());
  const std::int64_t rows = dtable.dim(0), dim = dtable.dim(1);
  LT_CHECK(dout.dim(1) == dim && dout.is_contiguous() &&
               dout.dim(0) >= static_cast<std::int64_t>(tokens.size()),
           "embedding_shard_backward " << dout.describe() << " for " << tokens.size() << " tokens");
  // Occurrences grouped by table row, in token order within a row: (row << 32 | t) sorted.
  std::vector<std::uint64_t> keys;
  keys.reserve(tokens.size());
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const std::int64_t local = tokens[t] - vocab_offset;
    if (local >= 0 && local < rows)
      keys.push_back(static_cast<std::uint64_t>(local) << 32 | static_cast<std::uint64_t>(t));
  }
  if (keys.empty()) return;
  std::sort(keys.begin(), keys.end());
  std::vector<std::int32_t> positions(keys.size()), seg_start, seg_row;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const auto row = static_cast<std::int32_t>(keys[k] >> 32);
    positions[k] = static_cast<std::int32_t>(keys[k] & 0xffffffffu);
    if (k == 0 || row != seg_row.back()) {
      seg_start.push_back(static_cast<std::int32_t>(k));
      seg_row.push_back(row);
    }
  }
  seg_start.push_back(static_cast<std::int32_t>(keys.size()));
  Staging staging;
  const std::size_t po = staging.add(std::span<const std::int32_t>(positions));
  const std::size_t so = staging.add(std::span<const std::int32_t>(seg_start));
  const std::size_t ro = staging.add(std::span<const std::int32_t>(seg_row));
  staging.upload();
  launch::embedding_backward(launch_dt(dout), dout.raw(), ld(dout), launch_dt(dtable), dtable.raw(),
                             ld(dtable), dim, staging.at<const std::int32_t>(po),
                             staging.at<const std::int32_t>(so), staging.at<const std::int32_t>(ro),
                             static_cast<std::int64_t>(seg_row.size()));
}

// ---------------------------------------------------------------- RMSNorm

void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd) {
  require_cuda("rmsnorm_forward", {&x, &weight, &y, &rstd});
  LT_CHECK(
      x.rank() == 2 && y.shape() == x.shape() && weight.numel() == x.dim(1) &&
          rstd.numel() == x.dim(0) && x.dtype() == y.dtype(),
      "rmsnorm_forward " << x.describe() << " w " << weight.describe() << " -> " << y.describe());
  LT_CHECK(weight.dtype() == x.dtype() && weight.is_contiguous(),
           "rmsnorm weight " << weight.describe() << " for " << x.describe());
  LT_CHECK(rstd.dtype() == stat_dtype(x.dtype()) && rstd.is_contiguous(),
           "rmsnorm rstd " << rstd.describe() << " for " << x.describe());
  launch::rmsnorm_forward(launch_dt(x), x.raw(), ld(x), weight.raw(), y.raw(), ld(y), rstd.raw(),
                          x.dim(0), x.dim(1), eps);
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx) {
  require_cuda("rmsnorm_backward", {&dy, &x, &weight, &rstd, &dx, &dweight});
  LT_CHECK(x.rank() == 2 && dy.shape() == x.shape() && dx.shape() == x.shape() &&
               dweight.numel() == x.dim(1),
           "rmsnorm_backward " << dy.describe() << " " << x.describe() << " " << dx.describe());
  LT_CHECK(weight.dtype() == x.dtype() && weight.is_contiguous() && weight.numel() == x.dim(1),
           "rmsnorm weight " << weight.describe() << " for " << x.describe());
  LT_CHECK(
      dy.dtype() == x.dtype() && dx.dtype() == x.dtype(),
      "rmsnorm_backward dtypes " << dy.describe() << " " << x.describe() << " " << dx.describe());
  LT_CHECK(
      rstd.dtype() == stat_dtype(x.dtype()) && rstd.numel() == x.dim(0) && rstd.is_contiguous(),
      "rmsnorm rstd " << rstd.describe() << " for " << x.describe());
  LT_CHECK(dweight.is_contiguous(), "rmsnorm dweight " << dweight.describe());
  launch_dt(dweight);
  const std::int64_t rows = x.dim(0), dim = x.dim(1);
  if (rows == 0 || dim == 0) return;
  Tensor partial = device_scratch(launch::rmsnorm_chunks(rows) * dim, stat_dtype(x.dtype()));
  launch::rmsnorm_backward(launch_dt(x), dy.raw(), ld(dy), x.raw(), ld(x), weight.raw(), rstd.raw(),
                           dx.raw(), ld(dx), accumulate_dx, launch_dt(dweight), dweight.raw(), rows,
                           dim, partial.raw());
}

// ---------------------------------------------------------------- RoPE, SwiGLU

void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse) {
  require_cuda("rope_apply", {&x, &cos_table, &sin_table});
  LT_CHECK(x.rank() == 2 && head_dim > 0, "rope_apply " << x.describe());
  const std::int64_t rows = x.dim(0), width = x.dim(1), half = head_dim / 2;
  LT_CHECK(head_dim % 2 == 0 && width % head_dim == 0 &&
               static_cast<std::int64_t>(positions.size()) == rows && cos_table.rank() == 2 &&
               cos_table.dim(1) == half && sin_table.shape() == cos_table.shape(),
           "rope_apply " << x.describe() << " head_dim " << head_dim << " tables "
                         << cos_table.describe());
  LT_CHECK(cos_table.dtype() == DType::f32 && sin_table.dtype() == DType::f32 &&
               ld(cos_table) == ld(sin_table),
           "rope tables must be f32 with one layout: " << cos_table.describe() << " "
                                                       << sin_table.describe());
  const std::int64_t max_pos = cos_table.dim(0);
  for (std::int32_t pos : positions) {
    LT_CHECK(pos >= 0 && pos < max_pos, "position " << pos << " outside RoPE table of " << max_pos);
  }
  if (rows == 0) return;
  Staging staging;
  const std::size_t off = staging.add(positions);
  staging.upload();
  launch::rope_apply(launch_dt(x), x.raw(), ld(x), rows, width, head_dim,
                     staging.at<const std::int32_t>(off), cos_table.data<float>(),
                     sin_table.data<float>(), ld(cos_table), inverse);
}

void swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  require_cuda("swiglu_forward", {&gate_up, &out});
  LT_CHECK(gate_up.rank() == 2 && out.rank() == 2, "swiglu_forward " << gate_up.describe());
  const std::int64_t rows = out.dim(0), f = out.dim(1);
  LT_CHECK(gate_up.dim(0) == rows && gate_up.dim(1) == 2 * f && gate_up.dtype() == out.dtype(),
           "swiglu_forward " << gate_up.describe() << " -> " << out.describe());
  launch::swiglu_forward(launch_dt(out), gate_up.raw(), ld(gate_up), out.raw(), ld(out), rows, f);
}

void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  require_cuda("swiglu_backward", {&dout, &gate_up, &dgate_up});
  LT_CHECK(dout.rank() == 2 && gate_up.rank() == 2, "swiglu_backward " << dout.describe());
  const std::int64_t rows = dout.dim(0), f = dout.dim(1);
  LT_CHECK(gate_up.dim(0) == rows && gate_up.dim(1) == 2 * f && dgate_up.shape() == gate_up.shape(),
           "swiglu_backward " << dout.describe() << " " << gate_up.describe());
  LT_CHECK(gate_up.dtype() == dout.dtype() && dgate_up.dtype() == dout.dtype(),
           "swiglu_backward dtypes " << dout.describe() << " " << gate_up.describe() << " "
                                     << dgate_up.describe());
  launch::swiglu_backward(launch_dt(dout), dout.raw(), ld(dout), gate_up.raw(), ld(gate_up),
                          dgate_up.raw(), ld(dgate_up), rows, f);
}

// ---------------------------------------------------------------- attention

void attention_forward(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& out, const Tensor& lse) {
  require_cuda("attention_forward", {&q, &k, &v, &out, &lse});
  check_attention(a, q, k, v, out, lse);
  // A bf16 forward may write fp32 partial outputs (ring attention merges them before rounding).
  LT_CHECK(out.dtype() == q.dtype() || (q.dtype() == DType::bf16 && out.dtype() == DType::f32),
           "attention output " << out.describe() << " for " << q.describe() << " inputs");
  launch::AttentionArgs args = attention_args(a, q, k, v);
  args.out_dt = launch_dt(out);
  Staging staging;
  stage_attention(a, staging, args);
  launch::attention_forward(args, out.raw(), ld(out), lse.raw());
}

void attention_backward(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv) {
  require_cuda("attention_backward", {&q, &k, &v, &out, &lse, &dout, &dq, &dk, &dv});
  check_attention(a, q, k, v, out, lse);
  LT_CHECK(dout.shape() == q.shape() && dq.shape() == q.shape() && dk.shape() == k.shape() &&
               dv.shape() == v.shape(),
           "attention gradients do not match their inputs");
  LT_CHECK(out.dtype() == q.dtype() && dout.dtype() == q.dtype() && dq.dtype() == q.dtype() &&
               dk.dtype() == q.dtype() && dv.dtype() == q.dtype(),
           "attention_backward: out, dout, dq, dk, dv must have the dtype of q (" << q.describe()
                                                                                  << ")");
  launch::AttentionArgs args = attention_args(a, q, k, v);
  Staging staging;
  stage_attention(a, staging, args);
  Tensor delta = device_scratch(a.batch * a.heads * a.q_len, stat_dtype(q.dtype()));
  // The atomic-dQ flash backward when determinism is not asked for (the scratch is its fp32 dQ).
  Tensor dq_accum;
  if (!deterministic_attention() &&
      flash::supports_backward(args, dout.raw(), ld(dout), dq.raw(), ld(dq), dk.raw(), ld(dk),
                               dv.raw(), ld(dv))) {
    dq_accum = device_scratch(a.batch * a.q_len * a.heads * a.head_dim, DType::f32);
  }
  launch::attention_backward(args, out.raw(), ld(out), lse.raw(), dout.raw(), ld(dout), dq.raw(),
                             ld(dq), dk.raw(), ld(dk), dv.raw(), ld(dv), delta.raw(),
                             dq_accum.defined() ? dq_accum.raw() : nullptr);
}

namespace {
std::atomic<bool> g_flash_attention{true};
std::atomic<bool> g_deterministic_attention{true};
}  // namespace

void set_flash_attention(bool enabled) {
  g_flash_attention = enabled;
}

bool flash_attention_enabled() {
  return g_flash_attention;
}

void set_deterministic_attention(bool deterministic) {
  g_deterministic_attention = deterministic;
}

bool deterministic_attention() {
  return g_deterministic_attention;
}

std::int64_t flash_attention_calls() {
  return flash::calls();
}

bool flash_attention_forward_applies(const AttentionShape& a, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& out) {
  launch::AttentionArgs args = attention_args(a, q, k, v);
  args.out_dt = launch_dt(out);
  return flash::supports_forward(args, out.raw(), ld(out));
}

bool flash_attention_backward_applies(const AttentionShape& a, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& dout, const Tensor& dq,
                                      const Tensor& dk, const Tensor& dv) {
  const launch::AttentionArgs args = attention_args(a, q, k, v);
  return flash::supports_backward(args, dout.raw(), ld(dout), dq.raw(), ld(dq), dk.raw(), ld(dk),
                                  dv.raw(), ld(dv));
}

void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim) {
  require_cuda("attention_merge", {&out, &lse, &part_out, &part_lse});
  LT_CHECK(out.shape() == part_out.shape() && lse.shape() == part_lse.shape() && lse.rank() == 3 &&
               out.rank() == 2 && out.dim(1) == heads * head_dim && lse.dim(1) == heads &&
               lse.dim(0) * lse.dim(2) == out.dim(0),
           "attention_merge " << out.describe() << " " << lse.describe() << " with "
                              << part_out.describe() << " " << part_lse.describe());
  LT_CHECK(
      (lse.dtype() == DType::f32 || lse.dtype() == DType::f64) && part_lse.dtype() == lse.dtype(),
      "attention_merge: lse must be f32 or f64, both the same");
  LT_CHECK(lse.is_contiguous() && part_lse.is_contiguous(), "attention_merge: strided lse");
  launch::attention_merge(launch_dt(out), out.raw(), ld(out), launch_dt(part_out), part_out.raw(),
                          ld(part_out), lse.dtype() == DType::f64 ? Dt::f64 : Dt::f32, lse.raw(),
                          part_lse.raw(), lse.dim(0), lse.dim(2), heads, head_dim);
}

// ---------------------------------------------------------------- cross-entropy

double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab) {
  require_cuda("softmax_cross_entropy", {&logits});
  LT_CHECK(logits.rank() == 2, "softmax_cross_entropy " << logits.describe());
  const std::int64_t rows = logits.dim(0), width = logits.dim(1);
  LT_CHECK(static_cast<std::int64_t>(targets.size()) == rows &&
               static_cast<std::int64_t>(weights.size()) == rows && valid_vocab > 0 &&
               valid_vocab <= width &&
               (predictions.empty() || static_cast<std::int64_t>(predictions.size()) == rows),
           "softmax_cross_entropy " << logits.describe() << " rows " << targets.size());
  LT_CHECK(logits.dtype() == DType::f32 || logits.dtype() == DType::f64,
           "cross-entropy logits must be f32 or f64, got " << logits.describe());
  for (std::int32_t target : targets) {
    LT_CHECK(target >= 0 && target < valid_vocab,
             "target " << target << " outside vocabulary " << valid_vocab);
  }
  if (rows == 0) return 0.0;
  Staging staging;
  const std::size_t to = staging.add(targets), wo = staging.add(weights);
  const std::size_t lo = staging.reserve(static_cast<std::size_t>(rows) * sizeof(double));
  const std::size_t po = staging.reserve(static_cast<std::size_t>(rows) * sizeof(std::int32_t));
  staging.upload();
  launch::softmax_cross_entropy(launch_dt(logits), logits.raw(), ld(logits), rows, width,
                                valid_vocab, staging.at<const std::int32_t>(to),
                                staging.at<const float>(wo), grad_scale, staging.at<double>(lo),
                                predictions.empty() ? nullptr : staging.at<std::int32_t>(po));
  std::vector<double> losses(static_cast<std::size_t>(rows));
  launch::copy_to_host(losses.data(), staging.at<double>(lo), losses.size() * sizeof(double));
  if (!predictions.empty()) {
    launch::copy_to_host(predictions.data(), staging.at<std::int32_t>(po),
                         predictions.size_bytes());
  }
  double total = 0.0;
  for (std::size_t r = 0; r < losses.size(); ++r)
    total += static_cast<double>(weights[r]) * losses[r];
  return total;
}

void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax) {
  require_cuda("cross_entropy_shard_max", {&logits});
  check_logits(logits, valid, row_max.size());
  LT_CHECK(row_argmax.empty() || row_argmax.size() == row_max.size(),
           "cross_entropy_shard_max: " << row_argmax.size() << " argmax slots for "
                                       << row_max.size() << " rows");
  const std::int64_t rows = logits.dim(0);
  if (rows == 0) return;
  Staging staging;
  const std::size_t mo = staging.reserve(row_max.size_bytes());
  const std::size_t ao = staging.reserve(row_max.size() * sizeof(std::int32_t));
  staging.upload();
  launch::cross_entropy_shard_max(launch_dt(logits), logits.raw(), ld(logits), rows, valid,
                                  vocab_offset, staging.at<double>(mo),
                                  row_argmax.empty() ? nullptr : staging.at<std::int32_t>(ao));
  launch::copy_to_host(row_max.data(), staging.at<double>(mo), row_max.size_bytes());
  if (!row_argmax.empty()) {
    launch::copy_to_host(row_argmax.data(), staging.at<std::int32_t>(ao), row_argmax.size_bytes());
  }
}

void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit) {
  require_cuda("cross_entropy_shard_sums", {&logits});
  check_logits(logits, valid, row_max.size());
  LT_CHECK(targets.size() == row_max.size() && sum_exp.size() == row_max.size() &&
               target_logit.size() == row_max.size(),
           "cross_entropy_shard_sums: span sizes differ from " << row_max.size() << " rows");
  const std::int64_t rows = logits.dim(0);
  if (rows == 0) return;
  Staging staging;
  const std::size_t mo = staging.add(row_max), to = staging.add(targets);
  const std::size_t so = staging.reserve(sum_exp.size_bytes());
  const std::size_t lo = staging.reserve(target_logit.size_bytes());
  staging.upload();
  launch::cross_entropy_shard_sums(launch_dt(logits), logits.raw(), ld(logits), rows, valid,
                                   vocab_offset, staging.at<const double>(mo),
                                   staging.at<const std::int32_t>(to), staging.at<double>(so),
                                   staging.at<double>(lo));
  launch::copy_to_host(sum_exp.data(), staging.at<double>(so), sum_exp.size_bytes());
  launch::copy_to_host(target_logit.data(), staging.at<double>(lo), target_logit.size_bytes());
}

double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale) {
  require_cuda("cross_entropy_shard_finish", {&logits});
  check_logits(logits, valid, row_max.size());
  LT_CHECK(sum_exp.size() == row_max.size() && target_logit.size() == row_max.size() &&
               targets.size() == row_max.size() && weights.size() == row_max.size(),
           "cross_entropy_shard_finish: span sizes differ from " << row_max.size() << " rows");
  // The loss needs only the statistics: computed here exactly as the CPU backend does.
  double total = 0.0;
  for (std::size_t u = 0; u < row_max.size(); ++u) {
    const double w = weights[u];
    total += w * (row_max[u] + std::log(sum_exp[u]) - target_logit[u]);
  }
  const std::int64_t rows = logits.dim(0);
  if (grad_scale == 0.0 || rows == 0) return total;
  Staging staging;
  const std::size_t mo = staging.add(row_max), so = staging.add(sum_exp);
  const std::size_t to = staging.add(targets), wo = staging.add(weights);
  staging.upload();
  launch::cross_entropy_shard_grad(launch_dt(logits), logits.raw(), ld(logits), rows, logits.dim(1),
                                   valid, vocab_offset, staging.at<const double>(mo),
                                   staging.at<const double>(so), staging.at<const std::int32_t>(to),
                                   staging.at<const float>(wo), grad_scale);
  return total;
}

}  // namespace lt::cuda
