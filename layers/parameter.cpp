#include "layers/parameter.h"

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

namespace lt {

std::int64_t ParamSpec::global_index(std::int64_t local) const {
  if (global_shape.rank() == 0) return local;
  if (shape.rank() == 1) return row_offset + local;
  LT_CHECK(shape.rank() == 2 && global_shape.rank() == 2,
           "sharded parameter " << name << " must be 1D or 2D, got " << shape.str());
  const std::int64_t cols = shape[1];
  return (row_offset + local / cols) * global_shape[1] + col_offset + local % cols;
}

ParameterGroup::ParameterGroup(std::string name, std::vector<ParamSpec> specs, DType value_dtype,
                               DType grad_dtype, std::int64_t pad_to)
    : name_(std::move(name)), grad_dtype_(grad_dtype), value_dtype_(value_dtype) {
  LT_CHECK(pad_to >= 1, "parameter group " << name_ << ": pad_to " << pad_to);
  std::int64_t total = 0;
  for (auto& spec : specs) {
    Parameter p;
    p.offset = total;
    total += spec.shape.numel();
    p.spec = std::move(spec);
    params_.push_back(std::move(p));
  }
  numel_ = total;
  padded_ = (total + pad_to - 1) / pad_to * pad_to;
  values_ = Tensor::zeros(Shape{padded_}, value_dtype, MemCategory::weights);
  grads_ = Tensor::zeros(Shape{padded_}, grad_dtype, MemCategory::grads);
  for (auto& p : params_) {
    p.value = values_.flat_view(p.offset, p.spec.shape);
    p.grad = grads_.flat_view(p.offset, p.spec.shape);
  }
}

Parameter& ParameterGroup::get(const std::string& name) {
  for (auto& p : params_) {
    if (p.spec.name == name) return p;
  }
  throw Error("no parameter '" + name + "' in group '" + name_ + "'");
}

Tensor ParameterGroup::fused(const std::string& first_param, const Shape& shape, bool grad) const {
  for (const auto& p : params_) {
    if (p.spec.name == first_param) return (grad ? grads_ : values_).flat_view(p.offset, shape);
  }
  throw Error("no parameter '" + first_param + "' in group '" + name_ + "'");
}

void ParameterGroup::initialize(std::uint64_t seed) {
  generate_initial_values(seed, values_);
}

void ParameterGroup::generate_initial_values(std::uint64_t seed, const Tensor& dst) const {
  LT_CHECK(dst.numel() == padded_, "initial values for " << name_ << " into " << dst.describe());
  if (numel_ < dst.numel()) fill(dst.flat_view(numel_, Shape{dst.numel() - numel_}), 0.0);
  // Generated in f64 and converted once, so every dtype rounds the same underlying values.
  for (const auto& p : params_) {
    const std::int64_t n = p.spec.shape.numel();
    Tensor staging = Tensor::empty(Shape{n}, DType::f64, MemCategory::workspace, Device::cpu);
    double* v = staging.data<double>();
    const std::uint64_t key = rng_key(seed, p.spec.name);
    for (std::int64_t i = 0; i < n; ++i) {
      switch (p.spec.init) {
        case Init::normal:
          v[i] = p.spec.std * normal_at(key, static_cast<std::uint64_t>(p.spec.global_index(i)));
          // Rows past the end of the global tensor pad it to a multiple of tp: zero, never used.
          if (p.spec.global_shape.rank() > 0 &&
              p.spec.global_index(i) >= p.spec.global_shape.numel()) {
            v[i] = 0.0;
          }
          break;
        case Init::ones:
          v[i] = 1.0;
          break;
        case Init::zeros:
          v[i] = 0.0;
          break;
      }
    }
    copy(staging, dst.flat_view(p.offset, Shape{n}));
  }
}

void ParameterGroup::zero_grads() {
  if (grads_.defined()) fill(grads_, 0.0);
}

void ParameterGroup::release_grads() {
  grads_ = Tensor();
  for (auto& p : params_) p.grad = Tensor();
}

void ParameterGroup::release_values() {
  values_ = Tensor();
  for (auto& p : params_) p.value = Tensor();
}

void ParameterGroup::allocate_values() {
  if (values_.defined()) return;
  values_ = Tensor::empty(Shape{padded_}, value_dtype_, MemCategory::weights);
  for (auto& p : params_) p.value = values_.flat_view(p.offset, p.spec.shape);
}

void ParameterGroup::allocate_grads() {
  if (grads_.defined()) return;
  grads_ = Tensor::zeros(Shape{padded_}, grad_dtype_, MemCategory::grads);
  for (auto& p : params_) p.grad = grads_.flat_view(p.offset, p.spec.shape);
}

}  // namespace lt
