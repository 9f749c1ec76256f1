// The CUDA backend's non-model ops against the CPU backend, its allocator and transfers. Inputs
// are random with fixed seeds; every comparison brings both results to the host in f64 and
// measures max |cuda - cpu| / max |cpu| (max_rel_error).
//
// Tolerances:
//  - copy/cast, fill: exact (conversion rounds to nearest even on both sides).
//  - add, scale, add_bias, adamw_update: the kernels evaluate the CPU's expressions in the same
//    order without FMA contraction, so they are expected bit-identical; checked to 1e-6 (f32) /
//    1e-14 (f64) so a libm-level difference in sqrt would not hide behind an exact check.
//  - matmul f32 (fp32 arithmetic, TF32 off) vs OpenBLAS: 1e-5; bf16 inputs with f32 output:
//    1e-5 (the products of bf16 values are exact in fp32, only the summation order differs);
//    bf16 output: 1e-2 (one bf16 rounding, 2^-8 relative, on top of that); f64: 1e-12.
//  - bias_backward: chunked sums in the gradient's compute type vs the CPU's row-by-row sum:
//    1e-5 for f32 (bf16 gradients: 1e-2); bit-identical across two runs.
//  - sum_squares: double accumulation in another order: 1e-12 relative; bit-identical across
//    two runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda/kernels.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace lt {
namespace {

using test::max_rel_error;
using test::random_tensor;

constexpr DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f64};

std::string name_of(DType t) {
  return std::string(dtype_name(t));
}

// The same random values on cpu and cuda.
struct Pair {
  Tensor cpu, cuda;
};
Pair random_pair(const Shape& shape, DType dtype, std::uint64_t seed, double scale = 1.0) {
  Tensor host = random_tensor(shape, dtype, seed, Device::cpu, scale);
  return {host, to_device(host, Device::cuda)};
}

// ---------------------------------------------------------------------------------------------
// Runtime, allocator, transfers

TEST(CudaRuntime, DeviceSelectionMemoryInfoStreamsAndEvents) {
  LT_REQUIRE_CUDA();
  EXPECT_GT(cuda::device_count(), 0);
  cuda::set_device_for_local_rank(0);
  EXPECT_EQ(cuda::current_device(), 0);
  cuda::set_device_for_local_rank(cuda::device_count());  // wraps around
  EXPECT_EQ(cuda::current_device(), 0);
  const DeviceMemoryInfo info = device_memory_info();
  EXPECT_GT(info.total_bytes, 0u);
  EXPECT_LE(info.free_bytes, info.total_bytes);

  cuda::Stream stream;
  cuda::Event start, stop;
  start.record(&stream);
  stop.record(&stream);
  stop.synchronize();
  EXPECT_TRUE(stop.done());
  EXPECT_GE(stop.elapsed_ms_since(start), 0.0f);
  cuda::Stream moved = std::move(stream);
  moved.synchronize();
  EXPECT_EQ(stream.handle(), nullptr);
}

TEST(CudaAllocator, CountsEveryAllocationInItsCategoryLikeTheCpu) {
  LT_REQUIRE_CUDA();
  MemoryTracker& mem = MemoryTracker::for_device(Device::cuda);
  const MemorySnapshot before = mem.snapshot();
  mem.reset_peaks();
  {
    Tensor a = Tensor::empty(Shape{100, 10}, DType::f32, MemCategory::optimizer, Device::cuda);
    Tensor b = Tensor::zeros(Shape{50}, DType::bf16, MemCategory::communication, Device::cuda);
    const MemorySnapshot during = mem.snapshot();
    EXPECT_EQ(during.current_of(MemCategory::optimizer) - before.current_of(MemCategory::optimizer),
              4000);
    EXPECT_EQ(during.current_of(MemCategory::communication) -
                  before.current_of(MemCategory::communication),
              100);
    EXPECT_EQ(during.largest_of(MemCategory::optimizer), 4000);
    Tensor view = a.columns(2, 3);  // views allocate nothing
    EXPECT_EQ(mem.snapshot().current_total, during.current_total);
    EXPECT_EQ(view.device(), Device::cuda);
    // Nothing of this lands in the cpu tracker.
  }
  const MemorySnapshot after = mem.snapshot();
  EXPECT_EQ(after.current_total, before.current_total);
  EXPECT_EQ(after.peak_of(MemCategory::optimizer) - before.current_of(MemCategory::optimizer),
            4000);
}

TEST(CudaAllocator, ReusesCachedBlocksAndReleasesThem) {
  LT_REQUIRE_CUDA();
  device_release_cached();
  const std::size_t base = device_reserved_bytes();
  void* first = nullptr;
  {
    Tensor t = Tensor::empty(Shape{1000}, DType::f32, MemCategory::activations, Device::cuda);
    first = t.raw();
    EXPECT_EQ(device_reserved_bytes(), base + 4096);  // 4000 bytes rounded up to 512
  }
  EXPECT_EQ(device_reserved_bytes(), base + 4096);  // freed into the cache
  EXPECT_EQ(cuda::device_cached_bytes(), 4096u);
  {
    // 3970 bytes round to the same 4096-byte block: it comes back from the cache.
    Tensor t = Tensor::empty(Shape{1985}, DType::bf16, MemCategory::grads, Device::cuda);
    EXPECT_EQ(t.raw(), first);
    EXPECT_EQ(device_reserved_bytes(), base + 4096);
    EXPECT_EQ(cuda::device_cached_bytes(), 0u);
  }
  device_release_cached();
  EXPECT_EQ(device_reserved_bytes(), base);
  EXPECT_EQ(cuda::device_cached_bytes(), 0u);
}

TEST(CudaAllocator, OutOfMemoryNamesTheRequestAndTheTrackerThenRecovers) {
  LT_REQUIRE_CUDA();
  const std::int64_t huge = std::int64_t{1} << 50;  // 4 PiB of f32
  try {
    Tensor t = Tensor::empty(Shape{huge}, DType::f32, MemCategory::activations, Device::cuda);
    FAIL() << "allocating 4 PiB succeeded";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(huge * 4) + " bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("activations"), std::string::npos) << message;
    EXPECT_NE(message.find("weights"), std::string::npos) << message;  // the tracker's snapshot
  }
  // The failed request left no trace: the tracker and later allocations are unaffected.
  Tensor t = Tensor::zeros(Shape{16}, DType::f32, MemCategory::activations, Device::cuda);
  EXPECT_EQ(test::to_host_f64(t), std::vector<double>(16, 0.0));
}

TEST(CudaTransfers, RoundTripsEveryDtypeAndConvertsAcrossDevices) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Tensor host = random_tensor(Shape{37, 11}, dt, 7, Device::cpu);
    Tensor dev = to_device(host, Device::cuda);
    EXPECT_EQ(dev.device(), Device::cuda);
    EXPECT_EQ(dev.category(), host.category());
    Tensor back = to_device(dev, Device::cpu);
    EXPECT_EQ(max_rel_error(back, host), 0.0) << name_of(dt);
  }
  // i32 through copy_from_host / to_host_vector.
  std::vector<std::int32_t> ids(1001);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(i * 7919 % 503);
  Tensor dev_ids = Tensor::empty(Shape{1001}, DType::i32, MemCategory::workspace, Device::cuda);
  copy_from_host(ids.data(), ids.size() * sizeof(std::int32_t), dev_ids);
  EXPECT_EQ(to_host_vector<std::int32_t>(dev_ids), ids);

  // Converting, strided copies in both directions equal the CPU's conversion.
  for (DType from : kFloatTypes) {
    for (DType to : kFloatTypes) {
      Tensor wide = random_tensor(Shape{23, 40}, from, 11, Device::cpu);
      Tensor src = wide.columns(3, 17);
      Tensor expected = Tensor::empty(Shape{23, 17}, to, MemCategory::workspace);
      copy(src, expected);
      Tensor on_gpu = Tensor::zeros(Shape{23, 30}, to, MemCategory::workspace, Device::cuda);
      copy(src, on_gpu.columns(5, 17));  // cpu strided -> cuda strided, converting
      EXPECT_EQ(max_rel_error(on_gpu.columns(5, 17), expected), 0.0)
          << name_of(from) << " -> " << name_of(to);
      Tensor host_out = Tensor::zeros(Shape{23, 19}, from, MemCategory::workspace);
      copy(on_gpu.columns(5, 17), host_out.columns(1, 17));  // cuda strided -> cpu strided
      Tensor expected_back = Tensor::empty(Shape{23, 17}, from, MemCategory::workspace);
      copy(expected, expected_back);
      EXPECT_EQ(max_rel_error(host_out.columns(1, 17), expected_back), 0.0)
          << name_of(to) << " -> " << name_of(from);
    }
  }
}

TEST(CudaDispatch, MixedDevicesAreRefusedNamingTheOpAndDevices) {
  LT_REQUIRE_CUDA();
  Tensor a = Tensor::zeros(Shape{4}, DType::f32, MemCategory::workspace, Device::cuda);
  Tensor b = Tensor::zeros(Shape{4}, DType::f32, MemCategory::workspace);
  try {
    add(a, b);
    FAIL() << "add of a cuda and a cpu tensor succeeded";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("add"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda"), std::string::npos) << message;
    EXPECT_NE(message.find("cpu"), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------------
// Element-wise ops

TEST(CudaOps, CopyConvertsEveryDtypePairExactly) {
  LT_REQUIRE_CUDA();
  // Sizes with and without a tail after the vector groups; an offset view takes the unaligned
  // path.
  for (std::int64_t n : {1, 7, 4096, 100003}) {
    for (DType from : kFloatTypes) {
      for (DType to : kFloatTypes) {
        Pair src = random_pair(Shape{n + 1}, from, 100 + n);
        for (std::int64_t offset : {0, 1}) {
          Tensor s_cpu = src.cpu.flat_view(offset, Shape{n});
          Tensor s_gpu = src.cuda.flat_view(offset, Shape{n});
          Tensor expected = Tensor::empty(Shape{n}, to, MemCategory::workspace);
          copy(s_cpu, expected);
          Tensor got = Tensor::empty(Shape{n}, to, MemCategory::workspace, Device::cuda);
          copy(s_gpu, got);
          EXPECT_EQ(max_rel_error(got, expected), 0.0)
              << name_of(from) << " -> " << name_of(to) << " n " << n << " offset " << offset;
        }
      }
    }
  }
  // 2D strided views on both sides.
  for (DType from : kFloatTypes) {
    for (DType to : kFloatTypes) {
      Pair src = random_pair(Shape{65, 33}, from, 5);
      Tensor expected = Tensor::zeros(Shape{65, 40}, to, MemCategory::workspace);
      Tensor got = Tensor::zeros(Shape{65, 40}, to, MemCategory::workspace, Device::cuda);
      copy(src.cpu.columns(2, 29), expected.columns(9, 29));
      copy(src.cuda.columns(2, 29), got.columns(9, 29));
      EXPECT_EQ(max_rel_error(got, expected), 0.0) << name_of(from) << " -> " << name_of(to);
    }
  }
}

TEST(CudaOps, FillContiguousStridedAndI32) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Pair t = random_pair(Shape{31, 17}, dt, 3);
    fill(t.cpu.columns(4, 9), 0.1);
    fill(t.cuda.columns(4, 9), 0.1);  // the other columns keep their values
    EXPECT_EQ(max_rel_error(t.cuda, t.cpu), 0.0) << name_of(dt);
    fill(t.cpu, -2.5);
    fill(t.cuda, -2.5);
    EXPECT_EQ(max_rel_error(t.cuda, t.cpu), 0.0) << name_of(dt);
  }
  Tensor ids = Tensor::empty(Shape{1003}, DType::i32, MemCategory::workspace, Device::cuda);
  fill(ids, 42);
  EXPECT_EQ(to_host_vector<std::int32_t>(ids), std::vector<std::int32_t>(1003, 42));
}

TEST(CudaOps, AddAndScaleMatchTheCpu) {
  LT_REQUIRE_CUDA();
  for (std::int64_t n : {5, 4099, 65536}) {
    for (DType d : kFloatTypes) {
      for (DType s : kFloatTypes) {
        Pair dst = random_pair(Shape{n}, d, 20 + n);
        Pair src = random_pair(Shape{n}, s, 30 + n);
        add(dst.cpu, src.cpu, -0.75);
        add(dst.cuda, src.cuda, -0.75);
        const double tol = d == DType::f64 ? 1e-14 : 1e-6;
        EXPECT_LE(max_rel_error(dst.cuda, dst.cpu), tol)
            << name_of(s) << " into " << name_of(d) << " n " << n;
      }
      Pair t = random_pair(Shape{n}, d, 40 + n);
      scale(t.cpu, 1.0 / 3.0);
      scale(t.cuda, 1.0 / 3.0);
      EXPECT_LE(max_rel_error(t.cuda, t.cpu), d == DType::f64 ? 1e-14 : 1e-6) << name_of(d);
    }
  }
}

TEST(CudaOps, AddBiasOnStridedRows) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Pair y = random_pair(Shape{37, 50}, dt, 50);
    Pair bias = random_pair(Shape{21}, dt, 51);
    add_bias(y.cpu.columns(13, 21), bias.cpu);
    add_bias(y.cuda.columns(13, 21), bias.cuda);
    EXPECT_LE(max_rel_error(y.cuda, y.cpu), dt == DType::f64 ? 1e-14 : 1e-6) << name_of(dt);
  }
}

TEST(CudaOps, BiasBackwardMatchesTheCpuAndIsDeterministic) {
  LT_REQUIRE_CUDA();
  struct Case {
    std::int64_t rows, cols;
  };
  for (Case c : {Case{1, 1}, Case{17, 33}, Case{1000, 7}, Case{5000, 300}}) {
    for (DType dy_dt : kFloatTypes) {
      for (DType db_dt : {DType::f32, DType::f64}) {
        Pair dy = random_pair(Shape{c.rows, c.cols + 3}, dy_dt, 60);
        Pair db = random_pair(Shape{c.cols}, db_dt, 61);
        Tensor db_again = to_device(db.cuda, Device::cuda);
        bias_backward(dy.cpu.columns(2, c.cols), db.cpu);
        bias_backward(dy.cuda.columns(2, c.cols), db.cuda);
        bias_backward(dy.cuda.columns(2, c.cols), db_again);
        const double tol = db_dt == DType::f64 ? 1e-12 : 1e-5;
        EXPECT_LE(max_rel_error(db.cuda, db.cpu), tol)
            << c.rows << "x" << c.cols << " " << name_of(dy_dt) << " -> " << name_of(db_dt);
        EXPECT_EQ(max_rel_error(db_again, db.cuda), 0.0);
      }
    }
  }
  // bf16 gradient buffer: one bf16 rounding of the sum.
  Pair dy = random_pair(Shape{300, 64}, DType::bf16, 62);
  Pair db = random_pair(Shape{64}, DType::bf16, 63);
  bias_backward(dy.cpu, db.cpu);
  bias_backward(dy.cuda, db.cuda);
  EXPECT_LE(max_rel_error(db.cuda, db.cpu), 1e-2);
}

TEST(CudaOps, SumSquaresMatchesTheCpuAndIsDeterministic) {
  LT_REQUIRE_CUDA();
  for (std::int64_t n : {0, 1, 8191, 8193, (1 << 20) + 3}) {
    for (DType dt : kFloatTypes) {
      Pair t = random_pair(Shape{n}, dt, 70 + n);
      const double expected = sum_squares(t.cpu);
      const double got = sum_squares(t.cuda);
      EXPECT_NEAR(got, expected, 1e-12 * std::max(1.0, expected)) << name_of(dt) << " n " << n;
      EXPECT_EQ(sum_squares(t.cuda), got);
    }
  }
}

TEST(CudaOps, AdamWMatchesTheCpuWithEveryComputeCopy) {
  LT_REQUIRE_CUDA();
  const std::int64_t n = 10007;  // a tail after the vector groups
  for (DType master : {DType::f32, DType::f64}) {
    for (int copy_kind = 0; copy_kind < 3; ++copy_kind) {
      Pair w = random_pair(Shape{n}, master, 80);
      Pair m = random_pair(Shape{n}, master, 81, 0.1);
      Pair v = random_pair(Shape{n}, master, 82, 0.1);
      fill(v.cpu, 0.0);
      fill(v.cuda, 0.0);
      const DType copy_dt = copy_kind == 1 ? DType::bf16 : DType::f32;
      Tensor copy_cpu, copy_gpu;
      if (copy_kind > 0) {
        copy_cpu = Tensor::zeros(Shape{n}, copy_dt, MemCategory::weights);
        copy_gpu = Tensor::zeros(Shape{n}, copy_dt, MemCategory::weights, Device::cuda);
      }
      AdamWStep s{3e-3, 0.9, 0.95, 1e-8, 0.1, 1, 0.7};
      for (int step = 1; step <= 3; ++step) {
        s.step = step;
        Pair g = random_pair(Shape{n}, master, 90 + step);
        adamw_update(w.cpu, g.cpu, m.cpu, v.cpu, s, copy_cpu);
        adamw_update(w.cuda, g.cuda, m.cuda, v.cuda, s, copy_gpu);
      }
      const double tol = master == DType::f64 ? 1e-14 : 1e-6;
      EXPECT_LE(max_rel_error(w.cuda, w.cpu), tol) << name_of(master) << " copy " << copy_kind;
      EXPECT_LE(max_rel_error(m.cuda, m.cpu), tol);
      EXPECT_LE(max_rel_error(v.cuda, v.cpu), tol);
      if (copy_kind > 0) {
        EXPECT_LE(max_rel_error(copy_gpu, copy_cpu), copy_kind == 1 ? 1e-2 : tol);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GEMM

struct GemmCase {
  std::int64_t m, n, k;
};

// C = alpha op(A) op(B) + beta C on both backends, operands as (optionally) strided views.
double gemm_error(GemmCase g, bool ta, bool tb, DType in, DType out, bool strided, double alpha,
                  double beta, std::uint64_t seed) {
  const std::int64_t pad = strided ? 3 : 0;
  const Shape a_shape = ta ? Shape{g.k, g.m + pad} : Shape{g.m, g.k + pad};
  const Shape b_shape = tb ? Shape{g.n, g.k + pad} : Shape{g.k, g.n + pad};
  Pair a = random_pair(a_shape, in, seed);
  Pair b = random_pair(b_shape, in, seed + 1);
  Pair c = random_pair(Shape{g.m, g.n + pad}, out, seed + 2);
  auto view = [&](const Tensor& t) { return strided ? t.columns(pad, t.dim(1) - pad) : t; };
  matmul(view(a.cpu), ta, view(b.cpu), tb, view(c.cpu), alpha, beta);
  matmul(view(a.cuda), ta, view(b.cuda), tb, view(c.cuda), alpha, beta);
  return max_rel_error(c.cuda, c.cpu);
}

TEST(CudaGemm, EveryTransposeDtypeAndStridedViewMatchesTheCpu) {
  LT_REQUIRE_CUDA();
  struct Types {
    DType in, out;
    double tol;
  };
  const Types types[] = {{DType::f32, DType::f32, 1e-5},
                         {DType::bf16, DType::f32, 1e-5},
                         {DType::bf16, DType::bf16, 1e-2},
                         {DType::f64, DType::f64, 1e-12}};
  const GemmCase cases[] = {{1, 1, 1}, {37, 19, 53}, {64, 128, 256}, {129, 65, 33}};
  std::uint64_t seed = 1000;
  for (const Types& t : types) {
    for (GemmCase g : cases) {
      for (int ta = 0; ta < 2; ++ta) {
        for (int tb = 0; tb < 2; ++tb) {
          for (bool strided : {false, true}) {
            const double err = gemm_error(g, ta, tb, t.in, t.out, strided, 1.0, 0.0, seed += 3);
            EXPECT_LE(err, t.tol) << name_of(t.in) << "->" << name_of(t.out) << " " << g.m << "x"
                                  << g.n << "x" << g.k << " ta " << ta << " tb " << tb
                                  << " strided " << strided;
          }
        }
      }
    }
  }
}

TEST(CudaGemm, AlphaBetaAccumulateAndEmptyK) {
  LT_REQUIRE_CUDA();
  EXPECT_LE(gemm_error({48, 40, 72}, false, true, DType::f32, DType::f32, true, 1.5, 0.5, 7), 1e-5);
  EXPECT_LE(gemm_error({48, 40, 72}, true, false, DType::bf16, DType::f32, false, 1.0, 1.0, 8),
            1e-5);  // gradient accumulation: dW += dy^T x
  EXPECT_LE(gemm_error({48, 40, 72}, false, false, DType::bf16, DType::bf16, true, -2.0, 1.0, 9),
            1e-2);
  // k = 0: C = beta C (strided views: OpenBLAS refuses a leading dimension of 0).
  EXPECT_LE(gemm_error({33, 17, 0}, false, false, DType::f32, DType::f32, true, 1.0, 0.5, 10), 0.0);
  EXPECT_LE(gemm_error({33, 17, 0}, false, false, DType::f32, DType::f32, true, 1.0, 0.0, 11), 0.0);
}

TEST(CudaGemm, WorkspaceIsTrackedAndModelShapesRun) {
  LT_REQUIRE_CUDA();
  // A llama-like projection: tokens x dim times [ffn, dim]^T in bf16 with f32 output.
  EXPECT_LE(gemm_error({512, 1024, 768}, false, true, DType::bf16, DType::f32, false, 1.0, 0.0, 12),
            1e-5);
  const MemorySnapshot s = MemoryTracker::for_device(Device::cuda).snapshot();
  EXPECT_GE(s.current_of(MemCategory::workspace),
            static_cast<std::int64_t>(cuda::gemm_workspace_bytes()));
}

}  // namespace
}  // namespace lt
