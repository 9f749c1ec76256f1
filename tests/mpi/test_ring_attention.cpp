// Ring attention over the cp ranks against full attention computed on one rank: outputs, LSE
// and input gradients, causal, with and without document masks, zigzag sharding.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "parallel/mpi_communicator.h"
#include "parallel/ring_attention.h"
#include "parallel/runtime.h"
#include "parallel/zigzag.h"
#include "tests/mpi/mpi_test_main.h"

namespace lt {
namespace {

DistributedRuntime* g_runtime = nullptr;

Tensor random_rows(std::int64_t rows, std::int64_t cols, const char* name) {
  Tensor t = Tensor::empty(Shape{rows, cols}, DType::f32, MemCategory::workspace);
  const std::uint64_t key = rng_key(99, name);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(normal_at(key, static_cast<std::uint64_t>(i)));
  return t;
}

// Rows of `full` ([batch * seq, width]) that rank r holds under zigzag sharding.
Tensor local_rows(const Tensor& full, const Zigzag& z, std::int64_t rank, std::int64_t batch) {
  Tensor t = Tensor::empty(Shape{batch * z.local_len(), full.dim(1)}, full.dtype(),
                           MemCategory::workspace);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < z.local_len(); ++i)
      copy(full.rows(b * z.seq_len + z.global_index(rank, i), 1), t.rows(b * z.local_len() + i, 1));
  return t;
}

double max_rel(const Tensor& got, const Tensor& want) {
  double diff = 0.0, scale = 0.0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    diff =
        std::max(diff, static_cast<double>(std::abs(got.data<float>()[i] - want.data<float>()[i])));
    scale = std::max(scale, static_cast<double>(std::abs(want.data<float>()[i])));
  }
  return diff / scale;
}

class RingAttention : public ::testing::TestWithParam<bool> {};

TEST_P(RingAttention, MatchesFullAttention) {
  const bool documents = GetParam();
  auto cp = make_mpi_communicator(
      "cp",
      [] {
        std::vector<int> all(static_cast<std::size_t>(g_runtime->world_size()));
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
        return all;
      }(),
      60.0);
  const std::int64_t n = cp->size(), me = cp->rank();
  const std::int64_t batch = 2, seq = 24 * n, heads = 4, kv_heads = 2, hd = 16;
  const Zigzag z{n, seq};
  std::vector<std::int32_t> docs_full;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < seq; ++t)
      docs_full.push_back(documents ? static_cast<std::int32_t>((t * 3 + b) / 17) : 0);

  AttentionShape full;
  full.batch = batch;
  full.q_len = full.kv_len = seq;
  full.heads = heads;
  full.kv_heads = kv_heads;
  full.head_dim = hd;
  if (documents) full.q_doc = full.k_doc = docs_full;
  const Tensor q = random_rows(batch * seq, heads * hd, "q"),
               k = random_rows(batch * seq, kv_heads * hd, "k");
  const Tensor v = random_rows(batch * seq, kv_heads * hd, "v"),
               dout = random_rows(batch * seq, heads * hd, "dout");
  Tensor out = Tensor::empty(q.shape(), DType::f32, MemCategory::workspace);
  Tensor lse = Tensor::empty(Shape{batch, heads, seq}, DType::f32, MemCategory::workspace);
  attention_forward(full, q, k, v, out, lse);
  Tensor dq = Tensor::empty(q.shape(), DType::f32, MemCategory::workspace);
  Tensor dk = Tensor::empty(k.shape(), DType::f32, MemCategory::workspace);
  Tensor dv = Tensor::empty(v.shape(), DType::f32, MemCategory::workspace);
  attention_backward(full, q, k, v, out, lse, dout, dq, dk, dv);

  RingLayout layout;
  for (std::int64_t r = 0; r < n; ++r) {
    layout.order.push_back(z.global_order(r, batch));
    if (documents) layout.doc.push_back(z.slice<std::int32_t>(docs_full, r, batch));
  }
  AttentionShape local = full;
  local.q_len = local.kv_len = z.local_len();
  const Tensor lq = local_rows(q, z, me, batch), lk = local_rows(k, z, me, batch);
  const Tensor lv = local_rows(v, z, me, batch), ldout = local_rows(dout, z, me, batch);
  Tensor lout = Tensor::empty(lq.shape(), DType::f32, MemCategory::workspace);
  Tensor llse =
      Tensor::empty(Shape{batch, heads, z.local_len()}, DType::f32, MemCategory::workspace);
  ring_attention_forward(*cp, local, layout, lq, lk, lv, lout, llse);
  EXPECT_LE(max_rel(lout, local_rows(out, z, me, batch)), 1e-5);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < z.local_len(); ++i)
        EXPECT_NEAR(llse.data<float>()[(b * heads + h) * z.local_len() + i],
                    lse.data<float>()[(b * heads + h) * seq + z.global_index(me, i)], 1e-5);

  Tensor ldq = Tensor::empty(lq.shape(), DType::f32, MemCategory::workspace);
  Tensor ldk = Tensor::empty(lk.shape(), DType::f32, MemCategory::workspace);
  Tensor ldv = Tensor::empty(lv.shape(), DType::f32, MemCategory::workspace);
  ring_attention_backward(*cp, local, layout, lq, lk, lv, lout, llse, ldout, ldq, ldk, ldv);
  EXPECT_LE(max_rel(ldq, local_rows(dq, z, me, batch)), 1e-5);
  EXPECT_LE(max_rel(ldk, local_rows(dk, z, me, batch)), 1e-5);
  EXPECT_LE(max_rel(ldv, local_rows(dv, z, me, batch)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Masks, RingAttention, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "documents" : "causal"; });

}  // namespace
}  // namespace lt

int main(int argc, char** argv) {
  return lt::run_mpi_tests(argc, argv, lt::g_runtime);
}
