#include "optim/grad_clip.h"

#include <cmath>

#include "core/ops.h"

namespace lt {

double global_grad_norm(const Model& model) {
  double sum = 0.0;
  for (const auto& g : model.groups()) sum += sum_squares(g.grads());
  return std::sqrt(sum);
}

double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0.0 || norm <= max_norm) return 1.0;
  return max_norm / (norm + 1e-6);
}

}  // namespace lt
