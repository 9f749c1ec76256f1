// CUDA implementations of the non-model ops of core/ops.h (same contracts as core/cpu/kernels.h):
// GEMM (cuBLASLt), dtype-converting copies, fill, add, scale, bias add and its backward, the sum
// of squares, AdamW. Every tensor must live on Device::cuda. Reductions have a fixed order that
// depends only on the shapes (never on the device or on atomics), so results are reproducible;
// they may differ from the CPU's in the last bits.
//
// No CUDA headers: ops.cpp (g++) includes this. The kernels are in core/cuda/*.cu behind the raw
// launchers of core/cuda/base_launch.h; matmul is host code over cuBLASLt (gemm.cpp).
#pragma once

#include "core/ops.h"

namespace lt::cuda {

// bf16 x bf16 -> f32 or bf16 with fp32 accumulation; f32 with fp32 arithmetic (TF32 off, for
// parity with the CPU); f64 (cuBLAS DGEMM). The cuBLASLt handle and its workspace (counted as
// workspace in the cuda tracker) are created on first use per device and kept.
void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
            double alpha, double beta);
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& t, double value);
void add(const Tensor& dst, const Tensor& src, double alpha);
void scale(const Tensor& t, double factor);
void add_bias(const Tensor& y, const Tensor& bias);
void bias_backward(const Tensor& dy, const Tensor& dbias);
double sum_squares(const Tensor& t);
void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy);

// Bytes of the cuBLASLt workspace matmul keeps per device.
std::size_t gemm_workspace_bytes();

}  // namespace lt::cuda
