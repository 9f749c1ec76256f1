#include "trainer/memory_model.h"

#include <algorithm>

#include "layers/model_config.h"
#include "layers/recompute.h"

namespace lt {
namespace {

using Bytes = std::int64_t;

// Parameter elements of each flat group one rank holds: embed, the blocks, head.
std::vector<std::int64_t> group_sizes(const ModelConfig& global, int tp) {
  const ModelConfig local = local_model_config(global, TensorParallelShard{tp, 0});
  std::vector<std::int64_t> sizes{local.vocab * local.dim};
  for (std::int64_t i = 0; i < global.layers; ++i) sizes.push_back(count_block_parameters(local));
  sizes.push_back(local.dim + (global.tie_embeddings ? 0 : local.vocab * local.dim));
  return sizes;
}

struct Sharding {
  std::int64_t ranks = 1;  // the replica group, dp x cp
  bool on = false;         // ZeRO stage >= 1 over more than one rank
  std::int64_t padded(std::int64_t n) const { return on ? (n + ranks - 1) / ranks * ranks : n; }
  std::int64_t shard(std::int64_t n) const { return on ? padded(n) / ranks : n; }
};

// Largest sum of two groups gathered at once under ZeRO stage 3: consecutive groups in the
// order the model uses them (embed, blocks, head; the LM head and the tied embedding together).
Bytes largest_pair(const std::vector<std::int64_t>& padded, bool tied) {
  Bytes best = 0;
  for (std::size_t i = 0; i + 1 < padded.size(); ++i)
    best = std::max(best, padded[i] + padded[i + 1]);
  if (tied) best = std::max(best, padded.front() + padded.back());
  return best;
}

void predict_model_state(const Config& c, MemoryPrediction& p) {
  const std::vector<std::int64_t> sizes = group_sizes(c.model, static_cast<int>(c.parallel.tp));
  const Sharding z{c.parallel.dp * c.parallel.cp,
                   c.parallel.zero_stage >= 1 && c.parallel.dp * c.parallel.cp > 1};
  const Bytes e = c.precision == "bf16" ? 2 : 4;
  const Bytes optimizer_bytes = c.precision == "bf16" ? 12 : 8;  // (fp32 master +) m + v
  std::vector<std::int64_t> padded;
  Bytes all = 0, shards = 0;
  for (std::int64_t n : sizes) {
    padded.push_back(z.padded(n));
    all += z.padded(n);
    shards += z.shard(n);
    p.parameters_per_rank += n;
  }
  const Bytes largest = *std::max_element(padded.begin(), padded.end());
  const bool stage2 = z.on && c.parallel.zero_stage >= 2,
             stage3 = z.on && c.parallel.zero_stage >= 3;
  const bool tied = c.model.tie_embeddings;
  auto at = [&](MemCategory cat) -> Bytes& { return p.peak[static_cast<std::size_t>(cat)]; };
  // Stage 3: the shards, plus the two groups gathered at once (the one in use, the next one).
  at(MemCategory::weights) = stage3 ? e * (shards + largest_pair(padded, tied)) : e * all;
  // Stage 2: the shards, plus the group whose backward is running (with tied embeddings the
  // embedding's buffer lives through the whole backward, beside the head's and then a block's).
  Bytes grads_extra = largest;
  if (tied)
    grads_extra = padded.front() + std::max(padded.back(), padded.size() > 2 ? padded[1] : 0);
  at(MemCategory::grads) = stage2 ? 4 * (shards + grads_extra) : 4 * all;
  at(MemCategory::optimizer) = optimizer_bytes * (z.on ? shards : all);
}

// Activation peak under dp and cp: what the blocks keep, walked through forward and backward.
void predict_activations(const Config& c, MemoryPrediction& p) {
  if (c.parallel.tp > 1) return;
  const ModelConfig& m = c.model;
  const Bytes e = c.precision == "bf16" ? 2 : 4;
  const Bytes t = c.train.micro_batch * c.data.seq_len / c.parallel.cp;  // tokens on this rank
  const Bytes h = m.dim, q = m.q_size(), kv = m.kv_size(), f = m.ffn, a = m.heads;
  const Bytes keep_none = t * (e * (4 * h + 2 * q + 2 * kv + 3 * f) + 8 + 4 * a);
  const Bytes keep_selective = t * (e * (2 * h + 2 * q + 2 * kv + 2 * f) + 4 * a);
  const Bytes keep_full = t * h * e;
  const Bytes final_norm = t * (2 * h * e + 4);
  std::vector<Recompute> policies = recompute_from_names(c.train.recompute.values);
  if (policies.size() <= 1) {
    policies.assign(static_cast<std::size_t>(m.layers),
                    policies.empty() ? Recompute::none : policies.front());
  }
  std::vector<Bytes> keep;
  for (Recompute r : policies) {
    keep.push_back(r == Recompute::none        ? keep_none
                   : r == Recompute::selective ? keep_selective
                                               : keep_full);
  }
  Bytes peak = 0, kept = 0;
  for (std::size_t i = 0; i < keep.size(); ++i) {
    kept += keep[i];
    // A selective block's forward holds its xn2, act and output on top of what it keeps.
    if (policies[i] == Recompute::selective) peak = std::max(peak, kept + t * e * (2 * h + f));
  }
  peak = std::max(peak, kept + final_norm);  // the end of forward
  for (std::size_t i = keep.size(); i-- > 0;) {
    // Backward of block i: everything blocks 0..i keep, plus what it recomputes.
    Bytes recomputed = 0;
    if (policies[i] == Recompute::selective) recomputed = t * (e * (h + f) + 4);
    if (policies[i] == Recompute::full) recomputed = keep_none - t * h * e;
    peak = std::max(peak, kept + recomputed);
    kept -= keep[i];
  }
  p.peak[static_cast<std::size_t>(MemCategory::activations)] = peak;
  p.activations_predicted = true;
}

}  // namespace

MemoryPrediction predict_memory(const Config& config) {
  MemoryPrediction p;
  predict_model_state(config, p);
  predict_activations(config, p);
  return p;
}

}  // namespace lt
