#include "layers/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/ops.h"

namespace lt {

namespace {

std::vector<double> plain_inverse_frequencies(double theta, std::int64_t head_dim) {
  std::vector<double> inv(static_cast<std::size_t>(head_dim / 2));
  for (std::int64_t i = 0; i < head_dim / 2; ++i) {
    inv[static_cast<std::size_t>(i)] =
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  }
  return inv;
}

// Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated (as in
// Meta's Llama 3.1 reference and HuggingFace's "llama3" rope type).
void apply_llama3(const RopeScaling& s, std::vector<double>& inv) {
  const double old_len = static_cast<double>(s.original_max_position);
  const double low_wavelen = old_len / s.low_freq_factor;
  const double high_wavelen = old_len / s.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f /= s.factor;
      continue;
    }
    const double smooth =
        (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = (1.0 - smooth) * f / s.factor + smooth * f;
  }
}

// The dimension index whose frequency turns `rotations` times over the pretraining context
// (YaRN paper, eq. 17; HF's find_correction_dim).
double yarn_correction_dim(double rotations, std::int64_t head_dim, double theta,
                           double original_len) {
  return static_cast<double>(head_dim) *
         std::log(original_len / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
}

// YaRN "NTK-by-parts": dimensions turning more than beta_fast times over the pretraining context
// keep their frequency (extrapolation), those turning fewer than beta_slow times are divided by
// the factor (interpolation), with a linear ramp between. The range is truncated to whole
// dimensions as HuggingFace and the reference implementation do, so exports load identically.
void apply_yarn(const RopeScaling& s, double theta, std::int64_t head_dim,
                std::vector<double>& inv) {
  const double old_len = static_cast<double>(s.original_max_position);
  const double low =
      std::max(std::floor(yarn_correction_dim(s.beta_fast, head_dim, theta, old_len)), 0.0);
  double high = std::min(std::ceil(yarn_correction_dim(s.beta_slow, head_dim, theta, old_len)),
                         static_cast<double>(head_dim - 1));
  if (low == high) high += 0.001;  // as HF: avoids dividing by zero
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    inv[i] = inv[i] / s.factor * ramp + inv[i] * (1.0 - ramp);
  }
}

}  // namespace

double rope_base(const ModelConfig& m) {
  if (m.rope_scaling.type != "ntk") return m.rope_theta;
  // NTK-aware scaling stretches the base so the lowest frequency is slowed by exactly `factor`
  // while the highest stays put: theta * factor^(d / (d - 2)).
  const auto d = static_cast<double>(m.resolved_head_dim());
  return m.rope_theta * std::pow(m.rope_scaling.factor, d / (d - 2.0));
}

std::vector<double> rope_inverse_frequencies(const ModelConfig& m) {
  const std::int64_t hd = m.resolved_head_dim();
  std::vector<double> inv = plain_inverse_frequencies(rope_base(m), hd);
  const RopeScaling& s = m.rope_scaling;
  if (s.type == "linear") {
    for (double& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    apply_llama3(s, inv);
  } else if (s.type == "yarn") {
    apply_yarn(s, m.rope_theta, hd, inv);
  } else {
    LT_CHECK(s.type == "none" || s.type == "ntk", "unknown rope scaling '" << s.type << "'");
  }
  return inv;
}

double rope_attention_factor(const ModelConfig& m) {
  const RopeScaling& s = m.rope_scaling;
  if (s.type != "yarn") return 1.0;
  if (s.attention_factor > 0.0) return s.attention_factor;
  // YaRN's temperature: scaling q and k by this multiplies the logits by its square.
  return s.factor <= 1.0 ? 1.0 : 0.1 * std::log(s.factor) + 1.0;
}

Rope::Rope(const ModelConfig& m, std::int64_t max_positions) : head_dim_(m.resolved_head_dim()) {
  const std::vector<double> inv = rope_inverse_frequencies(m);
  const double scale = rope_attention_factor(m);
  const auto half = static_cast<std::int64_t>(inv.size());
  // Computed on the host, then moved to the device the layers compute on.
  Tensor cos =
      Tensor::empty(Shape{max_positions, half}, DType::f32, MemCategory::workspace, Device::cpu);
  Tensor sin =
      Tensor::empty(Shape{max_positions, half}, DType::f32, MemCategory::workspace, Device::cpu);
  float* c = cos.data<float>();
  float* s = sin.data<float>();
  for (std::int64_t p = 0; p < max_positions; ++p) {
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv[static_cast<std::size_t>(i)];
      c[p * half + i] = static_cast<float>(scale * std::cos(angle));
      s[p * half + i] = static_cast<float>(scale * std::sin(angle));
    }
  }
  const Device device = default_device();
  cos_ = device == Device::cpu ? cos : to_device(cos, device);
  sin_ = device == Device::cpu ? sin : to_device(sin, device);
}

void Rope::forward(const Tensor& x, std::span<const std::int32_t> positions) const {
  rope_apply(x, head_dim_, positions, cos_, sin_, false);
}

void Rope::backward(const Tensor& dx, std::span<const std::int32_t> positions) const {
  rope_apply(dx, head_dim_, positions, cos_, sin_, true);
}

}  // namespace lt
