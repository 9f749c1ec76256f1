// Model FLOPs utilization: the model's FLOPs per second (the whole step's, all ranks) over what
// the job's devices could do at peak, the way `longtrain plan` estimates it.
#pragma once

namespace lt {

// 0 when peak_tflops is 0 (unknown, e.g. on CPU) or no time passed.
inline double model_flops_utilization(double model_flops, double seconds, double peak_tflops,
                                      int world_size) {
  if (peak_tflops <= 0.0 || seconds <= 0.0 || world_size < 1) return 0.0;
  return model_flops / seconds / (peak_tflops * 1e12 * world_size);
}

}  // namespace lt
