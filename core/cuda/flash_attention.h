// Tensor-core flash attention (flash_forward.cu, flash_backward.cu) behind the attention
// launchers of model_launch.h: they call it for the arguments it supports and run the simple
// CUDA-core kernels (model_attention.cu) otherwise. Same contract as those launchers: per-token
// causal orders and documents, GQA, LSE out, a deterministic backward (no atomics).
//
// Supported: bf16 q/k/v, head_dim 64 or 128, forward output f32 or bf16, every row of q, k, v and
// dout 16-byte aligned (ld a multiple of 8 elements), outputs with even ld, and enough shared
// memory per block (sm_80, sm_90). No CUDA headers: the host launchers include this.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cuda/model_launch.h"

namespace lt::cuda::flash {

bool supports_forward(const launch::AttentionArgs& a, const void* out, std::int64_t ldo);
bool supports_backward(const launch::AttentionArgs& a, const void* dout, std::int64_t ld_dout,
                       const void* dq, std::int64_t ld_dq, const void* dk, std::int64_t ld_dk,
                       const void* dv, std::int64_t ld_dv);

std::size_t forward_smem_bytes(std::int64_t head_dim);
std::size_t backward_smem_bytes(std::int64_t head_dim);

// Forward and backward calls that ran the flash kernels in this process (tests check that a run
// really took them).
std::int64_t calls();
void count_call();  // by forward() and backward()

// lse: f32 [batch, heads, q_len].
void forward(const launch::AttentionArgs& a, void* out, std::int64_t ldo, void* lse);
// delta: f32 [batch, heads, q_len] = rowsum(dout * out), computed by the caller.
// dq_accum: null for the deterministic backward (a dQ kernel recomputes S and dP per tile, no
// atomics, the same bits every run); else dq_accum_bytes(a) of device scratch, and dQ is added
// there atomically by the dK/dV kernel (FA2: 5 tile products per tile pair instead of 7; the
// order of the additions, and so dQ's last bits, vary between runs).
void backward(const launch::AttentionArgs& a, const void* lse, const void* delta, const void* dout,
              std::int64_t ld_dout, void* dq, std::int64_t ld_dq, void* dk, std::int64_t ld_dk,
              void* dv, std::int64_t ld_dv, void* dq_accum = nullptr);
std::size_t dq_accum_bytes(const launch::AttentionArgs& a);

}  // namespace lt::cuda::flash
