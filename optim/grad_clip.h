#pragma once

#include "layers/model.h"

namespace lt {

// sqrt of the sum of squares of every gradient, groups and elements in a fixed order.
double global_grad_norm(const Model& model);
// The factor that brings the norm down to max_norm (1 when it is below, or max_norm is 0).
double clip_coefficient(double norm, double max_norm);

}  // namespace lt
