// The CUDA backend's model kernels and their launchers (core/cuda/model_*.cu, flash_*.cu), compiled
// for the host emulation of tests/sim (one std::thread per CUDA thread, barriers, shuffles,
// shared memory; the launchers' runtime calls on host memory), against the CPU backend on the same
// inputs. This runs the kernels' own source on a machine without a GPU: launch geometry, indexing,
// shared-memory tiling, reductions and masks are all exercised; timing, real memory ordering and
// device limits are not (tests/gpu covers those on a GPU). Tolerances as in
// tests/gpu/test_cuda_model_kernels.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/gpu/attention_cases.h"
#include "tests/test_util.h"
// After the framework's headers: the emulated launchers, in namespace lt_sim.
#include "tests/sim/sim_backend.h"

namespace lt {
namespace {

using namespace test::attention_cases;
namespace sl = lt_sim::cuda::launch;

Tensor host(const Shape& s, DType d) {
  return Tensor::empty(s, d, MemCategory::workspace, Device::cpu);
}

sl::Dt dt_of(DType d) {
  return d == DType::f32 ? sl::Dt::f32 : d == DType::bf16 ? sl::Dt::bf16 : sl::Dt::f64;
}

struct AttnRun {
  AttnInputs masks;
  std::vector<std::int32_t> q_gran, k_gran;
  Qkv x;
  sl::AttentionArgs args;
};

AttnRun attention_run(const AttnCase& c, DType dt, bool allow_flash) {
  AttnRun r{attention_inputs(c), {}, {}, make_qkv(c, dt, 61, Device::cpu), {}};
  AttentionShape& s = r.masks.shape;
  s.q_order = r.masks.q_order;
  s.k_order = r.masks.k_order;
  s.q_doc = r.masks.q_doc;
  s.k_doc = r.masks.k_doc;
  r.q_gran = attention_granules(r.masks.q_order, r.masks.q_doc, c.batch, c.q_len);
  r.k_gran = attention_granules(r.masks.k_order, r.masks.k_doc, c.batch, c.kv_len);
  sl::AttentionArgs& a = r.args;
  a.dt = dt_of(dt);
  a.out_dt = a.dt;
  fill_attention_args(a, c, r.masks, r.q_gran, r.k_gran);
  a.q = r.x.q.raw();
  a.k = r.x.k.raw();
  a.v = r.x.v.raw();
  a.ldq = r.x.q.row_stride();
  a.ldk = r.x.k.row_stride();
  a.ldv = r.x.v.row_stride();
  a.allow_flash = allow_flash;
  return r;
}

DType stat_dtype(DType d) {
  return d == DType::f64 ? DType::f64 : DType::f32;
}

double tol(DType d, double f32, double bf16, double f64) {
  return d == DType::f32 ? f32 : d == DType::bf16 ? bf16 : f64;
}

void check_attention(const AttnCase& c, DType dt, bool allow_flash) {
  SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(dt)) +
               (allow_flash ? " (flash allowed)" : " (simple kernels)"));
  AttnRun r = attention_run(c, dt, allow_flash);
  const Shape oshape{c.batch * c.q_len, c.heads * c.head_dim}, lshape{c.batch, c.heads, c.q_len};
  const Tensor ref_out = host(oshape, dt), ref_lse = host(lshape, stat_dtype(dt));
  attention_forward(r.masks.shape, r.x.q, r.x.k, r.x.v, ref_out, ref_lse);
  const Tensor out = host(oshape, dt), lse = host(lshape, stat_dtype(dt));
  sl::attention_forward(r.args, out.raw(), out.row_stride(), lse.raw());
  EXPECT_LE(test::relative_error(out, ref_out), tol(dt, 1e-4, 1e-2, 1e-10)) << "forward";
  EXPECT_LE(test::lse_error(lse, ref_lse), tol(dt, 1e-5, 1e-5, 1e-10)) << "lse";

  const Tensor dout = test::random_tensor(oshape, dt, 72, "dout");
  const Qkv ref_d = make_qkv(c, dt, 73, Device::cpu), d = make_qkv(c, dt, 73, Device::cpu);
  attention_backward(r.masks.shape, r.x.q, r.x.k, r.x.v, ref_out, ref_lse, dout, ref_d.q, ref_d.k,
                     ref_d.v);
  std::vector<double> delta_scratch(static_cast<std::size_t>(c.batch * c.heads * c.q_len));
  sl::attention_backward(r.args, ref_out.raw(), ref_out.row_stride(), ref_lse.raw(), dout.raw(),
                         dout.row_stride(), d.q.raw(), d.q.row_stride(), d.k.raw(),
                         d.k.row_stride(), d.v.raw(), d.v.row_stride(), delta_scratch.data());
  const double t = tol(dt, 2e-4, 2e-2, 1e-10);
  EXPECT_LE(test::relative_error(d.q, ref_d.q), t) << "dq";
  EXPECT_LE(test::relative_error(d.k, ref_d.k), t) << "dk";
  EXPECT_LE(test::relative_error(d.v, ref_d.v), t) << "dv";
  EXPECT_LE(test::relative_error(d.q_full, ref_d.q_full), t) << "outside the gradient views";
}

constexpr AttnCase kCases[] = {
    {"causal_gqa2", 1, 70, 70, 4, 2, 64, true, Masks::plain},
    {"noncausal_cross_hd40", 1, 33, 90, 2, 1, 40, false, Masks::plain},
    {"docs_hd128", 1, 80, 80, 2, 1, 128, true, Masks::docs},
    {"zigzag_cross_ranks", 1, 64, 64, 2, 1, 32, true, Masks::zigzag},
};

TEST(CudaSim, SimpleAttentionKernelsMatchTheCpuBackend) {
  for (const AttnCase& c : kCases)
    for (DType dt : {DType::f32, DType::bf16, DType::f64}) check_attention(c, dt, false);
}

TEST(CudaSim, AttentionLaunchersDispatchBf16HeadDims64And128ToFlash) {
  const std::int64_t before = lt_sim::cuda::flash::calls();
  for (const AttnCase& c : kCases) check_attention(c, DType::bf16, true);
  // causal_gqa2 (64) and docs_hd128 (128), forward and backward each.
  EXPECT_EQ(lt_sim::cuda::flash::calls() - before, 4);
}

}  // namespace
}  // namespace lt
