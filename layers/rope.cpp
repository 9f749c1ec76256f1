#include "layers/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/ops.h"

namespace lt {

std::vector<double> rope_inverse_frequencies(const ModelConfig& m) {
  const std::int64_t hd = m.resolved_head_dim();
  std::vector<double> inv(static_cast<std::size_t>(hd / 2));
  for (std::int64_t i = 0; i < hd / 2; ++i) {
    inv[static_cast<std::size_t>(i)] =
        1.0 / std::pow(m.rope_theta, static_cast<double>(2 * i) / static_cast<double>(hd));
  }
  const RopeScaling& s = m.rope_scaling;
  if (s.type == "linear") {
    for (double& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated
    // (as in Meta's Llama 3.1 reference and HuggingFace's "llama3" rope type).
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
  } else {
    LT_CHECK(s.type == "none", "unknown rope scaling '" << s.type << "'");
  }
  return inv;
}

Rope::Rope(const ModelConfig& m, std::int64_t max_positions) : head_dim_(m.resolved_head_dim()) {
  const std::vector<double> inv = rope_inverse_frequencies(m);
  const auto half = static_cast<std::int64_t>(inv.size());
  cos_ = Tensor::empty(Shape{max_positions, half}, DType::f32, MemCategory::workspace);
  sin_ = Tensor::empty(Shape{max_positions, half}, DType::f32, MemCategory::workspace);
  float* c = cos_.data<float>();
  float* s = sin_.data<float>();
  for (std::int64_t p = 0; p < max_positions; ++p) {
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv[static_cast<std::size_t>(i)];
      c[p * half + i] = static_cast<float>(std::cos(angle));
      s[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void Rope::forward(const Tensor& x, std::span<const std::int32_t> positions) const {
  rope_apply(x, head_dim_, positions, cos_, sin_, false);
}

void Rope::backward(const Tensor& dx, std::span<const std::int32_t> positions) const {
  rope_apply(dx, head_dim_, positions, cos_, sin_, true);
}

}  // namespace lt
