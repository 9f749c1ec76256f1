// AdamW with fp32 master weights over the model's flat parameter groups. In fp32 runs the
// compute weights are the master weights; in bf16 runs the optimizer keeps an fp32 master copy
// and writes the rounded result back into the bf16 compute weights after every step.
//
// ZeRO stage >= 1 over R replicas: this rank keeps Adam's moments (and the fp32 master copy in
// bf16 runs) only for its shard of each group (optim/zero_shard.h) and updates only that shard
// of the weights; the caller all-gathers the updated weights over the replica group.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "layers/model.h"
#include "optim/zero_shard.h"

namespace lt {

struct AdamWConfig {
  std::array<double, 2> betas{0.9, 0.95};
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms = false;
  bool decay_embeddings = false;
};

// Which part of the optimizer state this rank holds.
struct ZeroSharding {
  int stage = 0;  // 0: everything everywhere; >= 1: optimizer state sharded
  int ranks = 1;  // replica group size (dp x cp)
  int rank = 0;   // this rank's place in it
  bool sharded() const { return stage >= 1 && ranks > 1; }
};

class AdamW {
 public:
  AdamW(Model& model, const AdamWConfig& config, std::uint64_t seed, const ZeroSharding& zero = {});

  // One update from the accumulated gradients, each multiplied by grad_scale (the clipping
  // coefficient) first. Sharded: reads the gradients and writes the weights of owned() only.
  // `grad_shards` (ZeRO stage 2): one tensor per group holding the reduced gradients of owned()
  // only; empty: the gradients are read from the groups' own buffers. `value_shards` (ZeRO
  // stage 3): likewise the compute weights of owned(), updated instead of the group buffers.
  void step(double lr, double grad_scale, std::span<const Tensor> grad_shards = {},
            std::span<const Tensor> value_shards = {});
  std::int64_t steps_taken() const { return steps_; }
  // Restores the step count a checkpoint recorded (Adam's bias correction depends on it).
  void set_steps_taken(std::int64_t steps) { steps_ = steps; }
  // This rank's state of group `group` over owned(group), as flat tensors: the fp32 master
  // weights (undefined when the compute weights are the master, i.e. in fp32 runs) and the two
  // moments. Checkpoints read and write them in place.
  const Tensor& master(std::size_t group) const { return state_[group].master; }
  const Tensor& first_moment(std::size_t group) const { return state_[group].m; }
  const Tensor& second_moment(std::size_t group) const { return state_[group].v; }
  bool decays(const ParamSpec& spec) const;
  // The range of group `group`'s flat buffers this rank updates (all of it when unsharded).
  FlatRange owned(std::size_t group) const { return state_[group].owned; }

 private:
  struct GroupState {
    ParameterGroup* group;
    FlatRange owned;  // of the group's flat buffers
    Tensor master;    // separate fp32 master for `owned` (bf16 runs), else undefined
    Tensor m;         // for `owned`
    Tensor v;
  };

  AdamWConfig config_;
  std::vector<GroupState> state_;
  std::int64_t steps_ = 0;
};

}  // namespace lt
