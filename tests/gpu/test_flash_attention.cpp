// The tensor-core flash-attention kernels (core/cuda/flash_*.cu) against the CPU backend and the
// simple CUDA-core kernels (the naive GPU reference, selected with set_flash_attention(false)):
// bf16, head_dim 64 and 128, lengths 1 to 16K including odd ones and tile edges, GQA ratios 1/4/8,
// causal and not, documents, zigzag ring orders; the backward's bit reproducibility; and ring
// attention simulated on one GPU (cp blocks stepped and merged) against full attention.
//
// Tolerances (documented bf16 ones, as in test_cuda_model_kernels): outputs 1e-2 of the largest
// reference value (P is rounded to bf16 before P V, like FlashAttention-2), LSE 1e-5 relative,
// gradients 2e-2. Every test first checks that the flash path really applies, so a fallback to
// the simple kernel cannot pass for it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/cuda/model_kernels.h"
#include "core/ops.h"
#include "tests/gpu/attention_cases.h"
#include "tests/gpu/gpu_test_util.h"

namespace lt {
namespace {

using test::empty_on;
using test::lse_error;
using test::max_rel_error;
using test::on_cuda;
using test::random_tensor;
using test::to_host_f64;
using namespace test::attention_cases;

constexpr double kOutTol = 1e-2, kLseTol = 1e-5, kGradTol = 2e-2;

// Runs the simple CUDA-core kernels while alive.
struct SimpleKernels {
  SimpleKernels() { cuda::set_flash_attention(false); }
  ~SimpleKernels() { cuda::set_flash_attention(true); }
  SimpleKernels(const SimpleKernels&) = delete;
  SimpleKernels& operator=(const SimpleKernels&) = delete;
};

constexpr AttnCase kFlashCases[] = {
    {"one_token", 1, 1, 1, 2, 2, 64, true, Masks::plain},
    {"odd_17_noncausal_gqa4", 2, 17, 17, 8, 2, 128, false, Masks::plain},
    {"tile_edge_127", 1, 127, 127, 4, 4, 128, true, Masks::plain},
    {"tile_edge_128_gqa4", 1, 128, 128, 4, 1, 64, true, Masks::plain},
    {"tile_edge_129_gqa8", 2, 129, 129, 8, 1, 128, true, Masks::plain},
    {"cross_77q_300kv", 1, 77, 300, 4, 1, 64, false, Masks::plain},
    {"docs_300_gqa4", 2, 300, 300, 8, 2, 128, true, Masks::docs},
    {"docs_noncausal_200", 1, 200, 200, 4, 4, 64, false, Masks::docs},
    {"zigzag_cross_256_gqa8", 1, 256, 256, 8, 1, 128, true, Masks::zigzag},
    {"zigzag_docs_192", 2, 192, 192, 4, 1, 64, true, Masks::zigzag_docs},
    {"causal_1000_gqa8", 1, 1000, 1000, 8, 1, 128, true, Masks::plain},
};

// Long sequences: checked against the simple GPU kernel only (the CPU would take minutes).
constexpr AttnCase kLongCases[] = {
    {"causal_4096_gqa4_hd128", 1, 4096, 4096, 4, 1, 128, true, Masks::plain},
    {"noncausal_8191_hd64", 1, 8191, 8191, 2, 2, 64, false, Masks::plain},
    {"docs_16384_gqa2_hd128", 1, 16384, 16384, 2, 1, 128, true, Masks::docs},
};

Shape out_shape(const AttnCase& c) {
  return Shape{c.batch * c.q_len, c.heads * c.head_dim};
}
Shape lse_shape(const AttnCase& c) {
  return Shape{c.batch, c.heads, c.q_len};
}

struct Forward {
  Tensor out, lse;
};

Forward run_forward(const AttnInputs& in, const Qkv& x, DType out_dt, Device device,
                    const AttnCase& c) {
  Forward f{empty_on(out_shape(c), out_dt, device), empty_on(lse_shape(c), DType::f32, device)};
  if (device == Device::cpu) {
    attention_forward(in.shape, x.q, x.k, x.v, f.out, f.lse);
  } else {
    cuda::attention_forward(in.shape, x.q, x.k, x.v, f.out, f.lse);
  }
  return f;
}

Qkv run_backward(const AttnInputs& in, const Qkv& x, const Forward& f, const Tensor& dout,
                 const AttnCase& c, Device device, std::uint64_t seed) {
  Qkv d = make_qkv(c, DType::bf16, seed, device);  // random: the kernels must overwrite it
  if (device == Device::cpu) {
    attention_backward(in.shape, x.q, x.k, x.v, f.out, f.lse, dout, d.q, d.k, d.v);
  } else {
    EXPECT_TRUE(cuda::flash_attention_backward_applies(in.shape, x.q, x.k, x.v, dout, d.q, d.k,
                                                       d.v) == cuda::flash_attention_enabled());
    cuda::attention_backward(in.shape, x.q, x.k, x.v, f.out, f.lse, dout, d.q, d.k, d.v);
  }
  return d;
}

void expect_grads_near(const Qkv& actual, const Qkv& expected, double tol, const char* what) {
  EXPECT_LE(max_rel_error(actual.q, expected.q), tol) << "dq vs " << what;
  EXPECT_LE(max_rel_error(actual.k, expected.k), tol) << "dk vs " << what;
  EXPECT_LE(max_rel_error(actual.v, expected.v), tol) << "dv vs " << what;
  // Everything outside the gradient views is untouched.
  EXPECT_LE(max_rel_error(actual.q_full, expected.q_full), tol) << "fused buffer vs " << what;
}

TEST(FlashAttention, AppliesToBf16HeadDims64And128Only) {
  LT_REQUIRE_CUDA();
  for (std::int64_t hd : {64, 128, 40, 256}) {
    const AttnCase c{"probe", 1, 64, 64, 4, 2, hd, true, Masks::plain};
    const AttnInputs in = attention_inputs(c);
    for (DType dt : {DType::bf16, DType::f32}) {
      const Qkv x = make_qkv(c, dt, 5, Device::cuda);
      const Tensor out = empty_on(out_shape(c), dt, Device::cuda);
      const bool expected = dt == DType::bf16 && (hd == 64 || hd == 128);
      EXPECT_EQ(cuda::flash_attention_forward_applies(in.shape, x.q, x.k, x.v, out), expected)
          << "head_dim " << hd << " " << dtype_name(dt);
      SimpleKernels off;
      EXPECT_FALSE(cuda::flash_attention_forward_applies(in.shape, x.q, x.k, x.v, out));
    }
  }
}

TEST(FlashAttention, ForwardMatchesCpuAndSimpleKernel) {
  LT_REQUIRE_CUDA();
  for (const AttnCase& c : kFlashCases) {
    for (DType out_dt : {DType::bf16, DType::f32}) {
      SCOPED_TRACE(std::string(c.name) + " out " + std::string(dtype_name(out_dt)));
      const AttnInputs in = attention_inputs(c);
      const Qkv cpu_in = make_qkv(c, DType::bf16, 81, Device::cpu);
      const Qkv gpu_in = make_qkv(c, DType::bf16, 81, Device::cuda);
      const Forward ref = run_forward(in, cpu_in, out_dt, Device::cpu, c);
      const Forward flash = run_forward(in, gpu_in, out_dt, Device::cuda, c);
      ASSERT_TRUE(
          cuda::flash_attention_forward_applies(in.shape, gpu_in.q, gpu_in.k, gpu_in.v, flash.out));
      Forward simple;
      {
        SimpleKernels off;
        simple = run_forward(in, gpu_in, out_dt, Device::cuda, c);
      }
      EXPECT_LE(max_rel_error(flash.out, ref.out), kOutTol) << "vs CPU";
      EXPECT_LE(lse_error(flash.lse, ref.lse), kLseTol) << "vs CPU";
      EXPECT_LE(max_rel_error(flash.out, simple.out), kOutTol) << "vs simple kernel";
      EXPECT_LE(lse_error(flash.lse, simple.lse), kLseTol) << "vs simple kernel";
    }
  }
}

TEST(FlashAttention, BackwardMatchesCpuAndSimpleKernel) {
  LT_REQUIRE_CUDA();
  for (const AttnCase& c : kFlashCases) {
    SCOPED_TRACE(c.name);
    const AttnInputs in = attention_inputs(c);
    const Qkv cpu_in = make_qkv(c, DType::bf16, 91, Device::cpu);
    const Qkv gpu_in = make_qkv(c, DType::bf16, 91, Device::cuda);
    // Every backward starts from the CPU's forward results.
    const Forward cpu_f = run_forward(in, cpu_in, DType::bf16, Device::cpu, c);
    const Forward gpu_f{on_cuda(cpu_f.out), on_cuda(cpu_f.lse)};
    const Tensor dout_c = random_tensor(out_shape(c), DType::bf16, 92, Device::cpu);
    const Tensor dout_g = random_tensor(out_shape(c), DType::bf16, 92, Device::cuda);
    const Qkv ref = run_backward(in, cpu_in, cpu_f, dout_c, c, Device::cpu, 93);
    const Qkv flash = run_backward(in, gpu_in, gpu_f, dout_g, c, Device::cuda, 93);
    Qkv simple;
    {
      SimpleKernels off;
      simple = run_backward(in, gpu_in, gpu_f, dout_g, c, Device::cuda, 93);
    }
    expect_grads_near(flash, ref, kGradTol, "CPU");
    expect_grads_near(flash, simple, kGradTol, "simple kernel");
    // FA2's atomic dQ accumulation (train.deterministic: false).
    cuda::set_deterministic_attention(false);
    const Qkv atomic = run_backward(in, gpu_in, gpu_f, dout_g, c, Device::cuda, 93);
    cuda::set_deterministic_attention(true);
    expect_grads_near(atomic, ref, kGradTol, "CPU (atomic dQ)");
  }
}

TEST(FlashAttention, LongSequencesMatchSimpleKernel) {
  LT_REQUIRE_CUDA();
  for (const AttnCase& c : kLongCases) {
    SCOPED_TRACE(c.name);
    const AttnInputs in = attention_inputs(c);
    const Qkv x = make_qkv(c, DType::bf16, 101, Device::cuda);
    const Tensor dout = random_tensor(out_shape(c), DType::bf16, 102, Device::cuda);
    const Forward flash = run_forward(in, x, DType::bf16, Device::cuda, c);
    ASSERT_TRUE(cuda::flash_attention_forward_applies(in.shape, x.q, x.k, x.v, flash.out));
    const Qkv flash_d = run_backward(in, x, flash, dout, c, Device::cuda, 103);
    Forward simple;
    Qkv simple_d;
    {
      SimpleKernels off;
      simple = run_forward(in, x, DType::bf16, Device::cuda, c);
      simple_d = run_backward(in, x, flash, dout, c, Device::cuda, 103);
    }
    EXPECT_LE(max_rel_error(flash.out, simple.out), kOutTol);
    EXPECT_LE(lse_error(flash.lse, simple.lse), kLseTol);
    expect_grads_near(flash_d, simple_d, kGradTol, "simple kernel");
  }
}

TEST(FlashAttention, BackwardIsBitwiseReproducible) {
  LT_REQUIRE_CUDA();
  const AttnCase c{"docs_gqa4", 2, 700, 700, 8, 2, 128, true, Masks::docs};
  const AttnInputs in = attention_inputs(c);
  const Qkv x = make_qkv(c, DType::bf16, 111, Device::cuda);
  const Tensor dout = random_tensor(out_shape(c), DType::bf16, 112, Device::cuda);
  const Forward f = run_forward(in, x, DType::bf16, Device::cuda, c);
  const Qkv first = run_backward(in, x, f, dout, c, Device::cuda, 113);
  for (int run = 0; run < 3; ++run) {
    const Qkv again = run_backward(in, x, f, dout, c, Device::cuda, 114 + run);
    EXPECT_EQ(max_rel_error(again.q_full, first.q_full), 0.0) << "run " << run;
  }
  const Forward f2 = run_forward(in, x, DType::bf16, Device::cuda, c);
  EXPECT_EQ(max_rel_error(f2.out, f.out), 0.0) << "forward";
}

// ------------------------------------------------------------- ring attention on one GPU

// Rows of rank r's zigzag tokens (chunks r and 2 cp - 1 - r of `chunk` rows) of a [S, w] tensor.
Tensor zigzag_rows(const Tensor& full, std::int64_t rank, std::int64_t cp, std::int64_t chunk,
                   DType dtype) {
  Tensor local = empty_on(Shape{2 * chunk, full.dim(1)}, dtype, Device::cuda);
  copy(full.rows(rank * chunk, chunk), local.rows(0, chunk));
  copy(full.rows((2 * cp - 1 - rank) * chunk, chunk), local.rows(chunk, chunk));
  return local;
}

std::vector<std::int32_t> docs_every(const std::vector<std::int32_t>& positions, int run) {
  std::vector<std::int32_t> d;
  for (std::int32_t p : positions) d.push_back(p / run);
  return d;
}

// One sequence of S = 2 cp chunk tokens split over cp simulated ranks: each rank's output is the
// LSE merge of one flash call per K/V block (explicit global positions, f32 partial outputs, as
// parallel/ring_attention.cpp runs it); its gradients sum one backward call per block given the
// merged output and LSE, dK/dV accumulating for the block's owner. Both equal full attention.
void check_ring_equals_full(bool with_docs) {
  const std::int64_t cp = 4, chunk = 96, S = 2 * cp * chunk, local = 2 * chunk;
  const std::int64_t H = 8, Hkv = 2, D = 128;
  SCOPED_TRACE(with_docs ? "documents" : "one document");
  const Tensor q = random_tensor(Shape{S, H * D}, DType::bf16, 121, Device::cuda);
  const Tensor k = random_tensor(Shape{S, Hkv * D}, DType::bf16, 122, Device::cuda);
  const Tensor v = random_tensor(Shape{S, Hkv * D}, DType::bf16, 123, Device::cuda);
  const Tensor dout = random_tensor(Shape{S, H * D}, DType::bf16, 124, Device::cuda);

  AttentionShape full;
  full.q_len = full.kv_len = S;
  full.heads = H;
  full.kv_heads = Hkv;
  full.head_dim = D;
  const std::vector<std::int32_t> positions = iota_positions(S, 1);
  const std::vector<std::int32_t> full_docs = docs_every(positions, 101);
  if (with_docs) full.q_doc = full.k_doc = full_docs;
  const Tensor out = empty_on(Shape{S, H * D}, DType::bf16, Device::cuda);
  const Tensor lse = empty_on(Shape{1, H, S}, DType::f32, Device::cuda);
  cuda::attention_forward(full, q, k, v, out, lse);
  const Tensor dq = empty_on(q.shape(), DType::bf16, Device::cuda);
  const Tensor dk = empty_on(k.shape(), DType::bf16, Device::cuda);
  const Tensor dv = empty_on(v.shape(), DType::bf16, Device::cuda);
  cuda::attention_backward(full, q, k, v, out, lse, dout, dq, dk, dv);
  const std::vector<double> lse_full = to_host_f64(lse);

  std::vector<std::vector<std::int32_t>> order, docs;
  std::vector<Tensor> lq, lk, lv, ldout, dk_acc, dv_acc;
  for (std::int64_t r = 0; r < cp; ++r) {
    order.push_back(zigzag_order(r, local, 1, cp));
    docs.push_back(docs_every(order.back(), 101));
    lq.push_back(zigzag_rows(q, r, cp, chunk, DType::bf16));
    lk.push_back(zigzag_rows(k, r, cp, chunk, DType::bf16));
    lv.push_back(zigzag_rows(v, r, cp, chunk, DType::bf16));
    ldout.push_back(zigzag_rows(dout, r, cp, chunk, DType::bf16));
    dk_acc.push_back(
        Tensor::zeros(Shape{local, Hkv * D}, DType::f32, MemCategory::workspace, Device::cuda));
    dv_acc.push_back(
        Tensor::zeros(Shape{local, Hkv * D}, DType::f32, MemCategory::workspace, Device::cuda));
  }
  auto block = [&](std::int64_t me, std::int64_t src) {
    AttentionShape s;
    s.q_len = s.kv_len = local;
    s.heads = H;
    s.kv_heads = Hkv;
    s.head_dim = D;
    s.q_order = order[static_cast<std::size_t>(me)];
    s.k_order = order[static_cast<std::size_t>(src)];
    if (with_docs) {
      s.q_doc = docs[static_cast<std::size_t>(me)];
      s.k_doc = docs[static_cast<std::size_t>(src)];
    }
    return s;
  };

  for (std::int64_t me = 0; me < cp; ++me) {
    SCOPED_TRACE("rank " + std::to_string(me));
    const auto m = static_cast<std::size_t>(me);
    const Tensor acc_out =
        Tensor::zeros(Shape{local, H * D}, DType::f32, MemCategory::workspace, Device::cuda);
    const Tensor acc_lse = empty_on(Shape{1, H, local}, DType::f32, Device::cuda);
    fill(acc_lse, -std::numeric_limits<double>::infinity());
    const Tensor part_out = empty_on(Shape{local, H * D}, DType::f32, Device::cuda);
    const Tensor part_lse = empty_on(Shape{1, H, local}, DType::f32, Device::cuda);
    for (std::int64_t src = 0; src < cp; ++src) {
      const auto s = static_cast<std::size_t>(src);
      const AttentionShape bs = block(me, src);
      ASSERT_TRUE(cuda::flash_attention_forward_applies(bs, lq[m], lk[s], lv[s], part_out));
      cuda::attention_forward(bs, lq[m], lk[s], lv[s], part_out, part_lse);
      cuda::attention_merge(acc_out, acc_lse, part_out, part_lse, H, D);
    }
    EXPECT_LE(max_rel_error(acc_out, zigzag_rows(out, me, cp, chunk, DType::f32)), kOutTol);
    const std::vector<double> ring_lse = to_host_f64(acc_lse);
    double lse_err = 0.0;
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < local; ++i) {
        const double a = ring_lse[static_cast<std::size_t>(h * local + i)];
        const double b =
            lse_full[static_cast<std::size_t>(h * S + order[m][static_cast<std::size_t>(i)])];
        lse_err = std::max(lse_err, std::abs(a - b) / std::max(1.0, std::abs(b)));
      }
    EXPECT_LE(lse_err, kLseTol);

    // Backward of every step given the merged output and LSE.
    const Tensor out_me = empty_on(Shape{local, H * D}, DType::bf16, Device::cuda);
    copy(acc_out, out_me);
    const Tensor dq_acc =
        Tensor::zeros(Shape{local, H * D}, DType::f32, MemCategory::workspace, Device::cuda);
    const Tensor dq_part = empty_on(Shape{local, H * D}, DType::bf16, Device::cuda);
    const Tensor dk_part = empty_on(Shape{local, Hkv * D}, DType::bf16, Device::cuda);
    const Tensor dv_part = empty_on(Shape{local, Hkv * D}, DType::bf16, Device::cuda);
    for (std::int64_t src = 0; src < cp; ++src) {
      const auto s = static_cast<std::size_t>(src);
      cuda::attention_backward(block(me, src), lq[m], lk[s], lv[s], out_me, acc_lse, ldout[m],
                               dq_part, dk_part, dv_part);
      add(dq_acc, dq_part);
      add(dk_acc[s], dk_part);
      add(dv_acc[s], dv_part);
    }
    EXPECT_LE(max_rel_error(dq_acc, zigzag_rows(dq, me, cp, chunk, DType::f32)), kGradTol) << "dq";
  }
  for (std::int64_t r = 0; r < cp; ++r) {
    const auto i = static_cast<std::size_t>(r);
    EXPECT_LE(max_rel_error(dk_acc[i], zigzag_rows(dk, r, cp, chunk, DType::f32)), kGradTol)
        << "dk of rank " << r;
    EXPECT_LE(max_rel_error(dv_acc[i], zigzag_rows(dv, r, cp, chunk, DType::f32)), kGradTol)
        << "dv of rank " << r;
  }
}

TEST(FlashAttention, RingStepsOnOneGpuEqualFullAttention) {
  LT_REQUIRE_CUDA();
  check_ring_equals_full(false);
  check_ring_equals_full(true);
}

}  // namespace
}  // namespace lt
