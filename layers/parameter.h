// Parameters live in flat per-layer groups (one buffer for values, one for gradients) so that the
// optimizer, gradient clipping and, later, ZeRO sharding and checkpoints work on flat ranges. Each
// parameter is a named view into its group, initialized element by element from the counter-based
// RNG keyed by (seed, name, global index): the same values under any parallel layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lt {

enum class Init { normal, ones, zeros };

struct ParamSpec {
  std::string name;  // HuggingFace Llama naming, e.g. "model.layers.0.self_attn.q_proj.weight"
  Shape shape;       // the local shape (the whole tensor in a single-process run)
  Init init = Init::normal;
  double std = 0.02;
  bool decay = true;  // weight decay applies
  bool is_norm = false;
  bool is_embedding = false;
  // A shard of a larger global tensor (tensor parallelism): the global shape and where this
  // shard starts in it. Rank 0 global_shape means the parameter is not sharded.
  Shape global_shape{};
  std::int64_t row_offset = 0;
  std::int64_t col_offset = 0;
  // Tensor-parallel ranks holding this same slice (KV heads replicated when kv_heads < tp): their
  // gradients are partial sums to add up, and the slice counts once in the gradient norm.
  std::int64_t tp_replicas = 1;

  // Index in the global tensor of local element `local` (row-major in `shape`).
  std::int64_t global_index(std::int64_t local) const;
};

struct Parameter {
  ParamSpec spec;
  std::int64_t offset = 0;  // in elements, inside the group's flat buffers
  Tensor value;             // compute dtype
  Tensor grad;              // gradient dtype (f32, or f64 in reference runs)
};

class ParameterGroup {
 public:
  // The flat buffers hold the parameters back to back, then zeros up to a multiple of pad_to
  // (the ZeRO replica count: every rank's shard of the buffer has the same size).
  ParameterGroup(std::string name, std::vector<ParamSpec> specs, DType value_dtype,
                 DType grad_dtype, std::int64_t pad_to = 1);

  const std::string& name() const { return name_; }
  std::vector<Parameter>& params() { return params_; }
  const std::vector<Parameter>& params() const { return params_; }
  Parameter& get(const std::string& name);
  const Tensor& values() const { return values_; }
  const Tensor& grads() const { return grads_; }
  // Parameter elements (without the padding).
  std::int64_t numel() const { return numel_; }
  // Elements of the flat buffers, padding included.
  std::int64_t padded_numel() const { return padded_; }

  // Consecutive parameters starting at `first_param` as one view of `shape` (values or grads):
  // e.g. q, k and v projections as one [q + 2kv, dim] matrix for a single GEMM.
  Tensor fused(const std::string& first_param, const Shape& shape, bool grad) const;

  void initialize(std::uint64_t seed);
  // Writes the initial values into `dst`, a flat buffer with this group's layout in any floating
  // dtype (e.g. fp32 master weights beside bf16 compute weights: both round the same values).
  void generate_initial_values(std::uint64_t seed, const Tensor& dst) const;
  // Zeroes the gradients (a no-op while they are released).
  void zero_grads();
  // ZeRO stage 2 keeps a group's full gradient buffer only while its backward runs:
  // release_grads() frees it (every Parameter::grad becomes undefined), allocate_grads() brings
  // back a zeroed one. Gradients are allocated after construction.
  void release_grads();
  void allocate_grads();
  // ZeRO stage 3 the same for the compute weights: between uses only this rank's shard exists
  // (held by the trainer); allocate_values() gives an uninitialized buffer to gather into.
  void release_values();
  void allocate_values();
  bool has_values() const { return values_.defined(); }

 private:
  std::string name_;
  std::vector<Parameter> params_;
  std::int64_t numel_ = 0;
  DType grad_dtype_;
  DType value_dtype_;
  std::int64_t padded_ = 0;
  Tensor values_;
  Tensor grads_;
};

}  // namespace lt
