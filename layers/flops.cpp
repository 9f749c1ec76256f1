#include "layers/flops.h"

#include "core/error.h"

namespace lt {

double block_projection_flops_per_token(const ModelConfig& m) {
  const auto h = static_cast<double>(m.dim), q = static_cast<double>(m.q_size()),
             kv = static_cast<double>(m.kv_size()), f = static_cast<double>(m.ffn);
  return 2.0 * h * (q + 2.0 * kv) + 2.0 * q * h + 2.0 * h * 2.0 * f + 2.0 * f * h;
}

double attention_flops(const ModelConfig& m, std::int64_t length) {
  // Scores Q·K^T and the weighted sum P·V: 2·q FLOPs each per (query, visible key) pair, and
  // query i of a document sees i + 1 keys: L(L + 1)/2 pairs.
  const auto n = static_cast<double>(length);
  return 4.0 * static_cast<double>(m.q_size()) * n * (n + 1.0) / 2.0;
}

double head_flops_per_token(const ModelConfig& m) {
  return 2.0 * static_cast<double>(m.dim) * static_cast<double>(m.vocab);
}

StepFlops step_flops(const ModelConfig& m, std::span<const std::int64_t> document_lengths,
                     std::span<const Recompute> policies) {
  const auto layers = static_cast<std::size_t>(m.layers);
  LT_CHECK(policies.size() <= 1 || policies.size() == layers,
           policies.size() << " recompute policies for " << layers << " layers");
  double tokens = 0.0, attention = 0.0;
  for (std::int64_t length : document_lengths) {
    tokens += static_cast<double>(length);
    attention += attention_flops(m, length);
  }
  const double projections = block_projection_flops_per_token(m) * tokens;
  const double block_forward = projections + attention;
  const double forward =
      static_cast<double>(layers) * block_forward + head_flops_per_token(m) * tokens;
  StepFlops f;
  f.model = 3.0 * forward;  // backward: two GEMMs (input and weight gradients) per forward GEMM
  // Every block's attention backward recomputes the scores Q·K^T (half its forward).
  f.hardware = f.model + static_cast<double>(layers) * attention / 2.0;
  const double down = 2.0 * static_cast<double>(m.ffn) * static_cast<double>(m.dim) * tokens;
  for (std::size_t i = 0; i < layers; ++i) {
    const Recompute p = policies.empty() ? Recompute::none : policies[policies.size() == 1 ? 0 : i];
    if (p == Recompute::full) f.hardware += block_forward - down;
  }
  return f;
}

}  // namespace lt
