// What would make a plan that does not fit fit. Each lever is tried for real: the planner runs
// again with twice, four times, ... the devices, or with the sequence halved, and the first
// setting that fits is reported. Levers are ordered by how much their first step (x2 devices,
// s/2) takes off the shortfall, so the first one is the one that helps most.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "trainer/byte_size.h"
#include "trainer/format.h"
#include "trainer/planner.h"

namespace lt {
namespace {

constexpr int kMaxDoublings = 10;  // up to 1024 times the devices
constexpr int kMaxHalvings = 16;   // down to 1/65536 of the sequence

// How far over the budget the best layout of `plan` is (0 when it fits).
std::int64_t shortfall(const Plan& plan) {
  return std::max<std::int64_t>(0, plan.candidates.front().over_budget);
}

std::string best_layout(const Plan& plan, std::int64_t layers) {
  return describe_layout(plan.candidates.front().layout, layers);
}

// Runs `plan_at(i)` for i = 1 .. steps until one fits; the saving is measured at i = 1.
template <class PlanAt, class Describe>
Lever try_lever(std::string name, const Plan& now, int steps, PlanAt plan_at, Describe fits_at,
                std::string never) {
  Lever lever{std::move(name), std::move(never), 0};
  for (int i = 1; i <= steps; ++i) {
    const std::optional<Plan> p = plan_at(i);
    if (!p) break;
    if (i == 1) lever.first_step_saving = shortfall(now) - shortfall(*p);
    if (p->fits()) {
      lever.effect = fits_at(i, *p);
      break;
    }
  }
  return lever;
}

Lever more_devices(const Config& base, const Plan& now) {
  const ClusterSpec& k = now.cluster;
  const std::string unit = std::string(device_noun(k)) + "s";
  auto scaled = [&](int i) {
    ClusterSpec more = k;
    more.nodes = k.nodes << i;
    return more;
  };
  return try_lever(
      fmt::format("more {}", unit), now, kMaxDoublings,
      [&](int i) -> std::optional<Plan> { return plan_layouts(base, scaled(i), now.margin); },
      [&](int i, const Plan& p) {
        const ClusterSpec more = scaled(i);
        return fmt::format("fits on {} {} ({} nodes x {}): {}", more.world(), unit, more.nodes,
                           more.devices_per_node, best_layout(p, base.model.layers));
      },
      fmt::format("does not fit on up to {} {}", k.world() << kMaxDoublings, unit));
}

Lever shorter_sequences(const Config& base, const Plan& now) {
  auto shortened = [&](int i) {
    Config c = base;
    c.data.seq_len = base.data.seq_len >> i;
    return c;
  };
  return try_lever(
      "shorter sequences", now, kMaxHalvings,
      [&](int i) -> std::optional<Plan> {
        const Config c = shortened(i);
        if (c.data.seq_len < 2 || c.data.seq_len << i != base.data.seq_len) return std::nullopt;
        try {
          return plan_layouts(c, now.cluster, now.margin);
        } catch (const ConfigError&) {
          return std::nullopt;  // no layout is valid at this length: stop here
        }
      },
      [&](int i, const Plan& p) {
        return fmt::format("fits at data.seq_len {}: {}",
                           group_thousands(shortened(i).data.seq_len),
                           best_layout(p, base.model.layers));
      },
      "no shorter power-of-two fraction of data.seq_len fits");
}

Lever more_memory(const Plan& now) {
  const std::int64_t need = now.budget + shortfall(now);
  const auto memory =
      static_cast<std::int64_t>(std::ceil(static_cast<double>(need) / (1.0 - now.margin)));
  return {fmt::format("more memory per {}", device_noun(now.cluster)),
          fmt::format("{}s of at least {}: the leanest layout needs {}, plus the {:g}% margin",
                      device_noun(now.cluster), format_size(memory), format_size(need),
                      now.margin * 100.0),
          0};
}

}  // namespace

std::vector<Lever> levers_for(const Config& base, const Plan& plan) {
  std::vector<Lever> levers{more_devices(base, plan), shorter_sequences(base, plan)};
  std::stable_sort(levers.begin(), levers.end(), [](const Lever& a, const Lever& b) {
    return a.first_step_saving > b.first_step_saving;
  });
  levers.push_back(more_memory(plan));
  return levers;
}

}  // namespace lt
