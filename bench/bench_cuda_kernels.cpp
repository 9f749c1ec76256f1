// CUDA kernel figures: the bandwidth (GB/s) of each memory-bound kernel against the device's
// cudaMemcpy device-to-device bandwidth, and the TFLOP/s of the model's GEMMs through longtrain's
// matmul (cuBLASLt) against cublasGemmEx with the default algorithm. Medians of --iters timed
// runs (CUDA events, after --warmup untimed ones). Without a device it prints "no CUDA device"
// and exits 0.
//
//   bench_cuda_kernels [--iters N] [--warmup N] [--elements N] [--tokens N] [--no-gemm]
//
// Bytes are the minimum a kernel must move (each input read once, each output written once), so
// "% of copy" is the fraction of the achievable bandwidth a kernel reaches. To add a kernel, add a
// row to memory_kernels(): its bytes and a function that runs it once on tensors made in setup.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "core/storage.h"
#include "core/tensor.h"

namespace {

using lt::DType;
using lt::Shape;
using lt::Tensor;
using lt::bench::check;
using lt::bench::device_random;

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(s));
}

struct Args {
  int iters = 20;
  int warmup = 3;
  std::int64_t elements = std::int64_t{1} << 26;  // 64 Mi elements: 256 MiB of f32
  std::int64_t tokens = 8192;
  bool gemm = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return argv[++i];
    };
    if (k == "--iters")
      a.iters = std::stoi(next());
    else if (k == "--warmup")
      a.warmup = std::stoi(next());
    else if (k == "--elements")
      a.elements = std::stoll(next());
    else if (k == "--tokens")
      a.tokens = std::stoll(next());
    else if (k == "--no-gemm")
      a.gemm = false;
    else
      throw std::runtime_error("unknown option " + k);
  }
  return a;
}

// Median milliseconds of one call of `run` (lt::bench::median_ms with the run's counts).
double median_ms(const Args& args, const std::function<void()>& run) {
  return lt::bench::median_ms(args.warmup, args.iters, run);
}

struct MemKernel {
  std::string name;
  double bytes;               // moved per call
  std::function<void()> run;  // one call
};

// The table of memory-bound kernels on n elements (rows x cols = n for the row-wise ones).
std::vector<MemKernel> memory_kernels(std::int64_t n, std::vector<Tensor>& keep) {
  auto t = [&](const Shape& s, DType d, double scale = 1.0) {
    keep.push_back(device_random(s, d, scale));
    return keep.back();
  };
  const double f4 = 4.0 * n, b2 = 2.0 * n;
  const Tensor x32 = t(Shape{n}, DType::f32), y32 = t(Shape{n}, DType::f32);
  const Tensor x16 = t(Shape{n}, DType::bf16), y16 = t(Shape{n}, DType::bf16);
  const Tensor g32 = t(Shape{n}, DType::f32, 1e-3), m32 = t(Shape{n}, DType::f32, 1e-3);
  const Tensor v32 = t(Shape{n}, DType::f32, 0.0);
  lt::fill(v32, 1e-6);
  const std::int64_t cols = 4096, rows = n / cols;
  const Tensor rows16 = x16.flat_view(0, Shape{rows, cols});
  const Tensor bias16 = t(Shape{cols}, DType::bf16), dbias32 = t(Shape{cols}, DType::f32);
  const Tensor rstd = t(Shape{rows}, DType::f32), norm_w = t(Shape{cols}, DType::bf16);
  const Tensor out16 = y16.flat_view(0, Shape{rows, cols});
  const Tensor gate_up = x16.flat_view(0, Shape{rows / 2, 2 * cols});
  const Tensor act = y16.flat_view(0, Shape{rows / 2, cols});
  lt::AdamWStep step{1e-4, 0.9, 0.95, 1e-8, 0.1, 10, 1.0};
  const double r2 = 2.0 * static_cast<double>(rows * cols);  // bytes of the bf16 [rows, cols]

  std::vector<MemKernel> k;
  k.push_back({"copy f32 (cudaMemcpy2D path)", 2 * f4, [=] { lt::copy(x32, y32); }});
  k.push_back({"cast f32 -> bf16", f4 + b2, [=] { lt::copy(x32, y16); }});
  k.push_back({"cast bf16 -> f32", b2 + f4, [=] { lt::copy(x16, y32); }});
  k.push_back({"fill f32", f4, [=] { lt::fill(y32, 0.5); }});
  k.push_back({"scale f32", 2 * f4, [=] { lt::scale(y32, 0.999); }});
  k.push_back({"scale bf16", 2 * b2, [=] { lt::scale(y16, 0.999); }});
  k.push_back({"add f32 += f32", 3 * f4, [=] { lt::add(y32, x32, 0.5); }});
  k.push_back({"add f32 += bf16", 2 * f4 + b2, [=] { lt::add(y32, x16, 0.5); }});
  k.push_back({"add bf16 += bf16", 3 * b2, [=] { lt::add(y16, x16, 0.5); }});
  k.push_back({"adamw f32", 7 * f4, [=] { lt::adamw_update(y32, g32, m32, v32, step, {}); }});
  k.push_back({"adamw f32 + bf16 copy", 7 * f4 + b2,
               [=] { lt::adamw_update(y32, g32, m32, v32, step, y16); }});
  k.push_back({"sum_squares f32 (+ sync)", f4, [=] { (void)lt::sum_squares(g32); }});
  k.push_back({"add_bias bf16 [n/4096, 4096]", 2 * r2, [=] { lt::add_bias(rows16, bias16); }});
  k.push_back({"bias_backward bf16 -> f32", r2, [=] { lt::bias_backward(rows16, dbias32); }});
  // Model kernels (core/cuda/model_*.cu through the op dispatch).
  k.push_back({"rmsnorm_forward bf16 [n/4096, 4096]", 2 * r2,
               [=] { lt::rmsnorm_forward(rows16, norm_w, 1e-5, out16, rstd); }});
  k.push_back({"swiglu_forward bf16 [n/8192, 2x4096]", 1.5 * r2,
               [=] { lt::swiglu_forward(gate_up, act); }});
  const Tensor dx16 = t(Shape{rows, cols}, DType::bf16), dnorm_w = t(Shape{cols}, DType::f32);
  k.push_back({"rmsnorm_backward bf16", 3 * r2,
               [=] { lt::rmsnorm_backward(out16, rows16, norm_w, rstd, dx16, dnorm_w, false); }});
  const Tensor dgate_up = dx16.flat_view(0, Shape{rows / 2, 2 * cols});
  k.push_back(
      {"swiglu_backward bf16", 2.5 * r2, [=] { lt::swiglu_backward(act, gate_up, dgate_up); }});
  // RoPE and the embedding take host spans (positions, tokens): their upload is in the time.
  const std::int64_t max_pos = 4096, head_dim = 128, vocab = 32000;
  const Tensor cos_t = t(Shape{max_pos, head_dim / 2}, DType::f32);
  const Tensor sin_t = t(Shape{max_pos, head_dim / 2}, DType::f32);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i)
    ids[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919) % max_pos);
  k.push_back({"rope_apply bf16 (head_dim 128)", 2 * r2,
               [=] { lt::rope_apply(dx16, head_dim, ids, cos_t, sin_t, false); }});
  const Tensor table = t(Shape{vocab, cols}, DType::bf16);
  k.push_back({"embedding_forward bf16 (vocab 32000)", 2 * r2,
               [=] { lt::embedding_forward(table, ids, dx16); }});
  return k;
}

void bench_memory(const Args& args) {
  const std::int64_t n = args.elements;
  Tensor a = device_random(Shape{n}, DType::f32), b = device_random(Shape{n}, DType::f32);
  const double bytes = 2.0 * 4.0 * static_cast<double>(n);  // read + write
  const double copy_ms = median_ms(args, [&] {
    check(cudaMemcpyAsync(b.raw(), a.raw(), a.nbytes(), cudaMemcpyDeviceToDevice, nullptr),
          "cudaMemcpyAsync");
  });
  const double copy_gbs = bytes / (copy_ms * 1e6);
  fmt::print(
      "\nMemory-bound kernels, {} elements ({:.0f} MiB of f32); cudaMemcpy D2D {:.1f} GB/s "
      "(read + write)\n",
      n, 4.0 * static_cast<double>(n) / (1 << 20), copy_gbs);
  fmt::print("{:<40} {:>10} {:>10} {:>10} {:>10}\n", "kernel", "MB/call", "ms", "GB/s", "% copy");
  std::vector<Tensor> keep;
  for (const MemKernel& k : memory_kernels(n, keep)) {
    try {
      const double ms = median_ms(args, k.run);
      const double gbs = k.bytes / (ms * 1e6);
      fmt::print("{:<40} {:>10.1f} {:>10.4f} {:>10.1f} {:>9.1f}%\n", k.name, k.bytes / 1e6, ms, gbs,
                 100.0 * gbs / copy_gbs);
    } catch (const std::exception& e) {
      fmt::print("{:<40} {}\n", k.name, e.what());
    }
  }
}

struct GemmShape {
  std::string name;
  std::int64_t m, n, k;  // C[m, n] = A op B
  bool ta, tb;
  DType out;
};

// Forward (y = x W^T), input gradient (dx = dy W) and weight gradient (dW = dy^T x, f32) of a
// linear layer with weight [out, in] on `tokens` rows.
void add_linear(std::vector<GemmShape>& v, const std::string& name, std::int64_t tokens,
                std::int64_t in, std::int64_t out) {
  v.push_back({name + " fwd", tokens, out, in, false, true, DType::bf16});
  v.push_back({name + " dgrad", tokens, in, out, false, false, DType::bf16});
  v.push_back({name + " wgrad", out, in, tokens, true, false, DType::f32});
}

std::vector<GemmShape> model_gemms(std::int64_t tokens) {
  std::vector<GemmShape> v;
  // TinyLlama 1.1B: dim 2048, 32 heads / 4 KV heads of 64, FFN 5632.
  add_linear(v, "tinyllama qkv", tokens, 2048, 2048 + 2 * 256);
  add_linear(v, "tinyllama o", tokens, 2048, 2048);
  add_linear(v, "tinyllama gate_up", tokens, 2048, 2 * 5632);
  add_linear(v, "tinyllama down", tokens, 5632, 2048);
  // Llama-3-8B: dim 4096, 32 heads / 8 KV heads of 128, FFN 14336.
  add_linear(v, "llama3-8b qkv", tokens, 4096, 4096 + 2 * 1024);
  add_linear(v, "llama3-8b o", tokens, 4096, 4096);
  add_linear(v, "llama3-8b gate_up", tokens, 4096, 2 * 14336);
  add_linear(v, "llama3-8b down", tokens, 14336, 4096);
  return v;
}

void bench_gemm(const Args& args) {
  cublasHandle_t handle = nullptr;
  check(cublasCreate(&handle), "cublasCreate");
  fmt::print("\nGEMMs at {} tokens, bf16 inputs, fp32 accumulation (wgrad: f32 output)\n",
             args.tokens);
  fmt::print("{:<26} {:>7} {:>7} {:>7} {:>12} {:>12} {:>8}\n", "gemm", "m", "n", "k",
             "ours TFLOP/s", "cuBLAS", "ratio");
  for (const GemmShape& g : model_gemms(args.tokens)) {
    const Tensor a = device_random(g.ta ? Shape{g.k, g.m} : Shape{g.m, g.k}, DType::bf16, 0.05);
    const Tensor b = device_random(g.tb ? Shape{g.n, g.k} : Shape{g.k, g.n}, DType::bf16, 0.05);
    const Tensor c =
        Tensor::zeros(Shape{g.m, g.n}, g.out, lt::MemCategory::workspace, lt::Device::cuda);
    const double flops =
        2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
    const double ours = median_ms(args, [&] { lt::matmul(a, g.ta, b, g.tb, c, 1.0, 0.0); });
    const float alpha = 1.0f, beta = 0.0f;
    const double ref = median_ms(args, [&] {
      // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
      check(cublasGemmEx(handle, g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, g.ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                         static_cast<int>(g.n), static_cast<int>(g.m), static_cast<int>(g.k),
                         &alpha, b.raw(), CUDA_R_16BF, static_cast<int>(b.row_stride()), a.raw(),
                         CUDA_R_16BF, static_cast<int>(a.row_stride()), &beta, c.raw(),
                         g.out == DType::f32 ? CUDA_R_32F : CUDA_R_16BF,
                         static_cast<int>(c.row_stride()), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
    });
    const double ours_tf = flops / (ours * 1e9), ref_tf = flops / (ref * 1e9);
    fmt::print("{:<26} {:>7} {:>7} {:>7} {:>12.1f} {:>12.1f} {:>7.2f}x\n", g.name, g.m, g.n, g.k,
               ours_tf, ref_tf, ours_tf / ref_tf);
  }
  check(cublasDestroy(handle), "cublasDestroy");
}

}  // namespace

int main(int argc, char** argv) {
  return lt::bench::cuda_bench_main("bench_cuda_kernels", argc, argv, parse, [](const Args& args) {
    fmt::print("medians of {} timed runs after {} warm-up runs\n", args.iters, args.warmup);
    bench_memory(args);
    if (args.gemm) bench_gemm(args);
  });
}
