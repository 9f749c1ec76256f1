// The planner: given a model and data shape (a Config) and a cluster, enumerate every layout
// (tp, cp, dp, ZeRO stage, micro-batch, recompute policy including per-layer mixes) the trainer
// accepts, predict each one's peak memory per device (trainer/memory_model.h) and step time
// (trainer/step_time.h), keep those that fit under the memory budget, and rank them: fastest
// first, and among equal times the simplest (less tp x cp, less tp, lower ZeRO stage, less
// recompute, then the larger micro-batch). `longtrain plan` prints the result;
// `parallel.mode: auto` trains with the first candidate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layers/recompute.h"
#include "trainer/cluster.h"
#include "trainer/config.h"
#include "trainer/memory_model.h"
#include "trainer/step_time.h"

namespace lt {

// The recompute policies the planner tries: the first `full_layers` blocks `full`, the rest
// `rest`. Backward runs from the last block down, so what a `full` block recomputes sits on
// top of what the blocks below it keep: full recompute pays off on the first blocks
// (docs/memory-model.md, "A per-layer list").
struct RecomputeMix {
  std::int64_t full_layers = 0;
  Recompute rest = Recompute::none;

  // The train.recompute value for a model of `layers` blocks.
  PerLayerChoice choice(std::int64_t layers) const;
  // "none", "selective", "full", "full x12 then none".
  std::string describe(std::int64_t layers) const;
  // Orders mixes by how much they recompute (a tie-breaker: less is simpler).
  std::int64_t weight(std::int64_t layers) const;
};

struct Layout {
  std::int64_t tp = 1, cp = 1, dp = 1, zero_stage = 0, micro_batch = 1;
  RecomputeMix recompute;
};

// "tp 1 cp 8 dp 1 zero 3 micro_batch 1 recompute full x12 then none"
std::string describe_layout(const Layout& layout, std::int64_t layers);

// `base` with the layout's keys set and parallel.mode manual.
Config apply_layout(const Config& base, const Layout& layout);

struct Candidate {
  Layout layout;
  MemoryPrediction memory;
  StepTime time;
  std::int64_t over_budget = 0;  // predicted total minus the budget; > 0: does not fit

  bool fits() const { return over_budget <= 0; }
};

struct Plan {
  ClusterSpec cluster;
  double margin = 0.1;
  std::int64_t budget = 0;  // bytes per device a layout may use: (1 - margin) x memory
  std::int64_t layouts_tried = 0;
  // Every layout the rules accept, best first: those that fit by (step time, simplicity), then
  // the others by how far over the budget they are.
  std::vector<Candidate> candidates;

  bool fits() const { return !candidates.empty() && candidates.front().fits(); }
  std::int64_t fitting() const;
};

// Plans `base` (its model, data.seq_len, train.global_batch, precision and
// parallel.sequence_parallel; the layout keys in it are ignored) for `cluster`.
// Throws ConfigError when no layout at all passes the rules (e.g. no tp divides the heads).
Plan plan_layouts(const Config& base, const ClusterSpec& cluster, double margin);

// What would make a plan that does not fit fit, the most helpful first: more devices of the
// same kind, shorter sequences, more memory per device; each says how far it goes.
struct Lever {
  std::string name;
  std::string effect;
  std::int64_t first_step_saving = 0;  // bytes off the shortfall of the first step (x2, s/2)
};
std::vector<Lever> levers_for(const Config& base, const Plan& plan);

}  // namespace lt
