// Activation recomputation: what a decoder block keeps from forward for its backward, and what
// backward recomputes instead. The recomputed tensors come from the same kernels on the same
// inputs, so every policy gives bit-identical losses and gradients; they trade compute for
// activation memory.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lt {

enum class Recompute {
  // Keep everything backward reads.
  none,
  // Keep the results of GEMMs and attention (qkv after RoPE, the attention output and its
  // LSE, the residual after attention, gate/up) and the block input; recompute the two
  // RMSNorms (outputs and rstd) and silu(gate)·up in backward. RoPE is applied in place on the
  // kept qkv, so it costs nothing to keep and is not rerun.
  selective,
  // Keep only the block input; backward reruns the block's forward (ring attention and the
  // tensor-parallel collectives included) before its backward.
  full,
};

inline const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::none:
      return "none";
    case Recompute::selective:
      return "selective";
    case Recompute::full:
      return "full";
  }
  return "?";
}

inline std::optional<Recompute> recompute_from_name(std::string_view name) {
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
    if (name == recompute_name(r)) return r;
  }
  return std::nullopt;
}

// Policies from their names (train.recompute, already validated): one per layer, or one name
// for every layer.
inline std::vector<Recompute> recompute_from_names(const std::vector<std::string>& names) {
  std::vector<Recompute> policies;
  for (const std::string& name : names) {
    const std::optional<Recompute> r = recompute_from_name(name);
    LT_CHECK(r.has_value(), "unknown recompute policy '" << name << "'");
    policies.push_back(*r);
  }
  return policies;
}

}  // namespace lt
