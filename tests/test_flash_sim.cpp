// The flash-attention kernels' own source (core/cuda/flash_forward_kernel.cuh,
// flash_backward_kernel.cuh) run on the CPU under a host emulation of CUDA threads, shared
// memory, cp.async, warp shuffles, ldmatrix and mma (tests/sim/flash_sim.h), against the CPU
// backend's attention: outputs, LSE and gradients for both head dims, partial tiles, GQA, causal
// and full masks, documents and zigzag ring orders. This exercises the kernels' indexing, tile
// walks, masks, online softmax and epilogues without a GPU; what it cannot see (timing, the
// memory model of real hardware, register pressure) is left to tests/gpu. Tolerances are the
// documented bf16 ones: outputs 1e-2 of the largest reference value, LSE 1e-5, gradients 2e-2.
#include "tests/sim/flash_sim.h"
// The kernels come after the emulation.
#include "core/cuda/flash_backward_kernel.cuh"
#include "core/cuda/flash_forward_kernel.cuh"
// Then the framework.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/gpu/attention_cases.h"
#include "tests/test_util.h"

namespace lt {
namespace {

namespace fl = cuda::flash;
using namespace test::attention_cases;

struct Inputs {
  AttnInputs masks;  // orders, documents and the shape pointing at them
  std::vector<std::int32_t> q_gran, k_gran;
  Tensor q, k, v;
  cuda::launch::AttentionArgs args;
};

Inputs make_inputs(const AttnCase& c) {
  Inputs in;
  in.masks = attention_inputs(c);
  AttentionShape& shape = in.masks.shape;
  shape.q_order = in.masks.q_order;
  shape.k_order = in.masks.k_order;
  shape.q_doc = in.masks.q_doc;
  shape.k_doc = in.masks.k_doc;
  in.q_gran = cuda::attention_granules(in.masks.q_order, in.masks.q_doc, c.batch, c.q_len,
                                       cuda::launch::kAttnGranule);
  in.k_gran = cuda::attention_granules(in.masks.k_order, in.masks.k_doc, c.batch, c.kv_len,
                                       cuda::launch::kAttnGranule);
  const std::int64_t qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  in.q = test::random_tensor(Shape{c.batch * c.q_len, qw}, DType::bf16, 5, "q");
  in.k = test::random_tensor(Shape{c.batch * c.kv_len, kw}, DType::bf16, 5, "k");
  in.v = test::random_tensor(Shape{c.batch * c.kv_len, kw}, DType::bf16, 5, "v");
  cuda::launch::AttentionArgs& a = in.args;
  a.dt = cuda::launch::Dt::bf16;
  a.out_dt = cuda::launch::Dt::f32;
  fill_attention_args(a, c, in.masks, in.q_gran, in.k_gran);
  a.q = in.q.raw();
  a.k = in.k.raw();
  a.v = in.v.raw();
  a.ldq = qw;
  a.ldk = kw;
  a.ldv = kw;
  return in;
}

template <int D>
void sim_forward(const Inputs& in, const Tensor& out, const Tensor& lse) {
  const cuda::launch::AttentionArgs& a = in.args;
  const dim3 grid{static_cast<unsigned>((a.q_len + fl::kBr - 1) / fl::kBr),
                  static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch)};
  cudasim::launch(grid, dim3(fl::ForwardWarps<D>::threads), fl::ForwardSmem<D>::bytes, [&] {
    fl::flash_forward_kernel<D, float>(a, out.data<float>(), out.row_stride(), lse.data<float>());
  });
}

template <int D>
void sim_backward(const Inputs& in, const Tensor& out, const Tensor& lse, const Tensor& dout,
                  const Tensor& dq, const Tensor& dk, const Tensor& dv, bool atomic_dq) {
  const cuda::launch::AttentionArgs& a = in.args;
  // delta = rowsum(dO * O) per (batch, head, query), from the bf16 output.
  std::vector<float> delta(static_cast<std::size_t>(a.batch * a.heads * a.q_len));
  const Tensor o64 = test::to_f64(out), g64 = test::to_f64(dout);
  for (std::int64_t r = 0; r < a.batch * a.q_len; ++r)
    for (std::int64_t h = 0; h < a.heads; ++h) {
      double sum = 0;
      for (std::int64_t d = 0; d < D; ++d) {
        const std::int64_t i = r * a.heads * D + h * D + d;
        sum += o64.data<double>()[i] * g64.data<double>()[i];
      }
      const std::int64_t b = r / a.q_len, qi = r % a.q_len;
      delta[static_cast<std::size_t>((b * a.heads + h) * a.q_len + qi)] = static_cast<float>(sum);
    }
  const fl::Pointers p{static_cast<const cuda::kern::bf16_t*>(a.q),
                       static_cast<const cuda::kern::bf16_t*>(a.k),
                       static_cast<const cuda::kern::bf16_t*>(a.v),
                       static_cast<const cuda::kern::bf16_t*>(dout.raw()),
                       dout.row_stride(),
                       lse.data<float>(),
                       delta.data()};
  auto* dq_p = static_cast<cuda::kern::bf16_t*>(dq.raw());
  auto* dk_p = static_cast<cuda::kern::bf16_t*>(dk.raw());
  auto* dv_p = static_cast<cuda::kern::bf16_t*>(dv.raw());
  const dim3 kv_grid(static_cast<unsigned>((a.kv_len + fl::kTile - 1) / fl::kTile),
                     static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(a.batch));
  if (!atomic_dq) {
    cudasim::launch(dim3(static_cast<unsigned>((a.q_len + fl::kTile - 1) / fl::kTile),
                         static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch)),
                    dim3(fl::kThreads), fl::BackwardSmem<D>::bytes,
                    [&] { fl::flash_dq_kernel<D>(a, p, dq_p, dq.row_stride()); });
    cudasim::launch(kv_grid, dim3(fl::kThreads), fl::BackwardSmem<D>::bytes, [&] {
      fl::flash_dkv_kernel<D, false>(a, p, dk_p, dk.row_stride(), dv_p, dv.row_stride());
    });
    return;
  }
  // FA2's variant: dQ added atomically by the dK/dV kernel, then rounded.
  const std::int64_t width = a.heads * D, rows = a.batch * a.q_len;
  std::vector<float> acc(static_cast<std::size_t>(rows * width), 0.f);
  cudasim::launch(kv_grid, dim3(fl::kThreads), fl::BackwardSmem<D>::bytes_atomic, [&] {
    fl::flash_dkv_kernel<D, true>(a, p, dk_p, dk.row_stride(), dv_p, dv.row_stride(), acc.data(),
                                  width);
  });
  cudasim::launch(dim3(4), dim3(fl::kThreads), 0, [&] {
    fl::flash_dq_convert_kernel<cuda::kern::bf16_t>(acc.data(), width, dq_p, dq.row_stride(), rows,
                                                    width);
  });
}

double lse_error(const Tensor& a, const Tensor& b) {
  double err = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) return INFINITY;
      continue;
    }
    err = std::max(err, std::abs(x - y) / std::max(1.0, std::abs(y)));
  }
  return err;
}

Tensor empty(const Shape& s, DType d) {
  return Tensor::empty(s, d, MemCategory::workspace, Device::cpu);
}

template <int D>
void check_case(const AttnCase& c) {
  SCOPED_TRACE(c.name);
  const Inputs in = make_inputs(c);
  const Shape oshape{c.batch * c.q_len, c.heads * D};
  const Shape lshape{c.batch, c.heads, c.q_len};
  const Tensor ref_out = empty(oshape, DType::f32), ref_lse = empty(lshape, DType::f32);
  attention_forward(in.masks.shape, in.q, in.k, in.v, ref_out, ref_lse);
  const Tensor out = empty(oshape, DType::f32), lse = empty(lshape, DType::f32);
  sim_forward<D>(in, out, lse);
  EXPECT_LE(test::relative_error(out, ref_out), 1e-2) << "forward output";
  EXPECT_LE(lse_error(lse, ref_lse), 1e-5) << "forward LSE";

  // Backward from the CPU's forward results (bf16 output, as training keeps it).
  const Tensor out_bf16 = empty(oshape, DType::bf16);
  copy(ref_out, out_bf16);
  const Tensor dout = test::random_tensor(oshape, DType::bf16, 6, "dout");
  const Shape kshape{c.batch * c.kv_len, c.kv_heads * D};
  const Tensor ref_dq = empty(oshape, DType::bf16), ref_dk = empty(kshape, DType::bf16),
               ref_dv = empty(kshape, DType::bf16);
  attention_backward(in.masks.shape, in.q, in.k, in.v, out_bf16, ref_lse, dout, ref_dq, ref_dk,
                     ref_dv);
  const Tensor dq = empty(oshape, DType::bf16), dk = empty(kshape, DType::bf16),
               dv = empty(kshape, DType::bf16);
  for (bool atomic_dq : {false, true}) {
    SCOPED_TRACE(atomic_dq ? "atomic dQ" : "deterministic");
    sim_backward<D>(in, out_bf16, ref_lse, dout, dq, dk, dv, atomic_dq);
    EXPECT_LE(test::relative_error(dq, ref_dq), 2e-2) << "dq";
    EXPECT_LE(test::relative_error(dk, ref_dk), 2e-2) << "dk";
    EXPECT_LE(test::relative_error(dv, ref_dv), 2e-2) << "dv";
  }
}

TEST(FlashSim, HeadDim64MatchesTheCpuBackend) {
  const AttnCase cases[] = {
      {"one_token", 1, 1, 1, 1, 1, 64, true, Masks::plain},
      {"causal_gqa2_partial_tiles", 1, 150, 150, 2, 1, 64, true, Masks::plain},
      {"full_cross_70q_130kv", 1, 70, 130, 1, 1, 64, false, Masks::plain},
      {"zigzag_docs", 1, 128, 128, 1, 1, 64, true, Masks::zigzag_docs},
      {"zigzag_cross_ranks_gqa4", 1, 64, 64, 4, 1, 64, true, Masks::zigzag},
  };
  for (const AttnCase& c : cases) check_case<64>(c);
}

// The bf16 output the attention layer keeps (one rounding of the f32 result).
TEST(FlashSim, Bf16OutputIsTheRoundedF32Output) {
  const AttnCase c{"bf16_out", 1, 100, 100, 2, 1, 64, true, Masks::plain};
  const Inputs in = make_inputs(c);
  const Shape oshape{c.q_len, c.heads * 64}, lshape{1, c.heads, c.q_len};
  const Tensor out32 = empty(oshape, DType::f32), lse = empty(lshape, DType::f32);
  sim_forward<64>(in, out32, lse);
  const Tensor out16 = empty(oshape, DType::bf16);
  cuda::launch::AttentionArgs a = in.args;
  a.out_dt = cuda::launch::Dt::bf16;
  cudasim::launch(dim3(1, static_cast<unsigned>(c.heads), 1), dim3(fl::ForwardWarps<64>::threads),
                  fl::ForwardSmem<64>::bytes, [&] {
                    fl::flash_forward_kernel<64, cuda::kern::bf16_t>(
                        a, static_cast<cuda::kern::bf16_t*>(out16.raw()), out16.row_stride(),
                        lse.data<float>());
                  });
  const Tensor rounded = empty(oshape, DType::bf16);
  copy(out32, rounded);
  EXPECT_EQ(test::relative_error(out16, rounded), 0.0);
}

TEST(FlashSim, HeadDim128MatchesTheCpuBackend) {
  const AttnCase cases[] = {
      {"causal_two_sequences_docs", 2, 96, 96, 2, 2, 128, true, Masks::docs},
      {"causal_gqa8_partial_129", 1, 129, 129, 8, 1, 128, true, Masks::plain},
      {"full_cross_33q_200kv", 1, 33, 200, 2, 1, 128, false, Masks::plain},
      {"zigzag_docs_gqa2", 1, 192, 192, 2, 1, 128, true, Masks::zigzag_docs},
  };
  for (const AttnCase& c : cases) check_case<128>(c);
}

}  // namespace
}  // namespace lt
