// AdamW with fp32 master weights over the model's flat parameter groups. In fp32 runs the
// compute weights are the master weights; in bf16 runs the optimizer keeps an fp32 master copy
// and writes the rounded result back into the bf16 compute weights after every step.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "layers/model.h"

namespace lt {

struct AdamWConfig {
  std::array<double, 2> betas{0.9, 0.95};
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms = false;
  bool decay_embeddings = false;
};

class AdamW {
 public:
  AdamW(Model& model, const AdamWConfig& config, std::uint64_t seed);

  // One update from the accumulated gradients, each multiplied by grad_scale (the clipping
  // coefficient) first.
  void step(double lr, double grad_scale);
  std::int64_t steps_taken() const { return steps_; }
  bool decays(const ParamSpec& spec) const;

 private:
  struct GroupState {
    ParameterGroup* group;
    Tensor master;  // the compute weights themselves in fp32 runs
    Tensor m;
    Tensor v;
    bool separate_master;
  };

  AdamWConfig config_;
  std::vector<GroupState> state_;
  std::int64_t steps_ = 0;
};

}  // namespace lt
