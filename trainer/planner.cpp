#include "trainer/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "trainer/config_schema.h"

namespace lt {
namespace {

std::vector<std::int64_t> divisors(std::int64_t n) {
  std::vector<std::int64_t> out;
  for (std::int64_t d = 1; d <= n; ++d) {
    if (n % d == 0) out.push_back(d);
  }
  return out;
}

// none, selective, then k = 1 .. layers - 1 full blocks followed by none or selective, then
// full everywhere.
std::vector<RecomputeMix> recompute_mixes(std::int64_t layers) {
  std::vector<RecomputeMix> out{{0, Recompute::none}, {0, Recompute::selective}};
  for (std::int64_t k = 1; k < layers; ++k) {
    out.push_back({k, Recompute::none});
    out.push_back({k, Recompute::selective});
  }
  out.push_back({layers, Recompute::none});
  return out;
}

// Tensor parallelism stays inside a node: its collectives run on every layer's critical path.
bool tp_fits_node(std::int64_t tp, const ClusterSpec& k) {
  return tp <= k.devices_per_node && k.devices_per_node % tp == 0;
}

std::vector<Layout> enumerate_layouts(const Config& base, const ClusterSpec& k) {
  const std::int64_t world = k.world(), layers = base.model.layers;
  const std::vector<RecomputeMix> mixes = recompute_mixes(layers);
  std::vector<Layout> out;
  for (std::int64_t tp : divisors(world)) {
    if (!tp_fits_node(tp, k)) continue;
    for (std::int64_t cp : divisors(world / tp)) {
      const std::int64_t dp = world / (tp * cp);
      if (base.train.global_batch % dp != 0) continue;
      const std::int64_t max_stage = dp * cp > 1 ? 3 : 0;  // ZeRO needs a replica to shard over
      for (std::int64_t b : divisors(base.train.global_batch / dp)) {
        for (std::int64_t stage = 0; stage <= max_stage; ++stage) {
          for (const RecomputeMix& r : mixes) out.push_back({tp, cp, dp, stage, b, r});
        }
      }
    }
  }
  return out;
}

bool passes_rules(const Config& c) {
  const auto& rules = schema::rules();
  return std::none_of(rules.begin(), rules.end(),
                      [&](const schema::CrossRule& rule) { return rule.check(c).has_value(); });
}

Candidate evaluate(const Config& config, const Layout& layout, const Plan& plan) {
  Candidate c;
  c.layout = layout;
  c.memory = predict_memory(config);
  c.over_budget = c.memory.total - plan.budget;
  c.time = estimate_step_time(config, plan.cluster);
  return c;
}

// Simpler layouts first among equal step times: fewer model-parallel ranks (more data
// parallelism), less tp, a lower ZeRO stage, less recompute, then the larger micro-batch (its
// GEMMs are larger; the model's compute term ignores that).
auto simplicity(const Candidate& c, std::int64_t layers) {
  const Layout& l = c.layout;
  return std::make_tuple(l.tp * l.cp, l.tp, l.zero_stage, l.recompute.weight(layers),
                         -l.micro_batch);
}

// Equal means equal to the nanosecond: layouts whose costs differ only by rounding tie.
std::int64_t time_key(const Candidate& c) {
  return std::llround(c.time.total_s() * 1e9);
}

void rank_candidates(std::vector<Candidate>& candidates, std::int64_t layers) {
  const auto key = [layers](const Candidate& c) {
    const bool fits = c.fits();
    return std::make_tuple(!fits, fits ? time_key(c) : c.over_budget, simplicity(c, layers));
  };
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const Candidate& a, const Candidate& b) { return key(a) < key(b); });
}

}  // namespace

PerLayerChoice RecomputeMix::choice(std::int64_t layers) const {
  if (full_layers == 0) return PerLayerChoice(recompute_name(rest));
  if (full_layers >= layers) return PerLayerChoice("full");
  PerLayerChoice c;
  c.list = true;
  c.values.assign(static_cast<std::size_t>(layers), recompute_name(rest));
  std::fill_n(c.values.begin(), full_layers, "full");
  return c;
}

std::string RecomputeMix::describe(std::int64_t layers) const {
  if (full_layers == 0) return recompute_name(rest);
  if (full_layers >= layers) return "full";
  return fmt::format("full x{} then {}", full_layers, recompute_name(rest));
}

std::int64_t RecomputeMix::weight(std::int64_t layers) const {
  // One full block outweighs selective on every block: it reruns the GEMMs.
  const std::int64_t full = std::min(full_layers, layers);
  return full * (layers + 1) + (rest == Recompute::selective ? layers - full : 0);
}

std::string describe_layout(const Layout& l, std::int64_t layers) {
  return fmt::format("tp {} cp {} dp {} zero {} micro_batch {} recompute {}", l.tp, l.cp, l.dp,
                     l.zero_stage, l.micro_batch, l.recompute.describe(layers));
}

Config apply_layout(const Config& base, const Layout& l) {
  Config c = base;
  c.parallel.mode = "manual";
  c.parallel.tp = l.tp;
  c.parallel.cp = l.cp;
  c.parallel.dp = l.dp;
  c.parallel.zero_stage = l.zero_stage;
  c.train.micro_batch = l.micro_batch;
  c.train.recompute = l.recompute.choice(base.model.layers);
  return c;
}

std::int64_t Plan::fitting() const {
  return std::count_if(candidates.begin(), candidates.end(),
                       [](const Candidate& c) { return c.fits(); });
}

Plan plan_layouts(const Config& base, const ClusterSpec& cluster, double margin) {
  Plan plan;
  plan.cluster = cluster;
  plan.margin = margin;
  plan.budget = static_cast<std::int64_t>(
      std::floor((1.0 - margin) * static_cast<double>(cluster.memory_bytes)));
  for (const Layout& layout : enumerate_layouts(base, cluster)) {
    ++plan.layouts_tried;
    Config config = apply_layout(base, layout);
    config.train.device = cluster.device;  // what the memory model predicts for
    if (passes_rules(config)) plan.candidates.push_back(evaluate(config, layout, plan));
  }
  if (plan.candidates.empty()) {
    throw ConfigError(fmt::format(
        "{}: no layout of {} {}s satisfies the config rules: tp x cp x dp must be {} with tp "
        "dividing the {} per node and model.heads ({}), 2 x cp dividing data.seq_len ({}), and dp "
        "dividing train.global_batch ({})",
        base.source_file.empty() ? "config" : base.source_file, cluster.world(),
        device_noun(cluster), cluster.world(), cluster.devices_per_node, base.model.heads,
        base.data.seq_len, base.train.global_batch));
  }
  rank_candidates(plan.candidates, base.model.layers);
  return plan;
}

}  // namespace lt
