#include "trainer/auto_layout.h"

#include <cmath>

#include "trainer/cluster.h"
#include "trainer/plan_report.h"
#include "trainer/planner.h"

namespace lt {

namespace {
constexpr double kAutoMargin = 0.1;  // as `longtrain plan`'s default
}

std::int64_t auto_memory_per_rank(const Config& config, std::int64_t local_ranks) {
  const double gib = config.parallel.memory_per_rank_gib;
  if (gib > 0) return static_cast<std::int64_t>(std::floor(gib * static_cast<double>(kGiB)));
  return host_available_memory() / std::max<std::int64_t>(1, local_ranks);
}

AutoLayout resolve_auto_layout(const Config& config, std::int64_t world, std::int64_t local_ranks,
                               std::int64_t memory_per_rank) {
  ClusterSpec cluster = cpu_cluster(world, local_ranks, memory_per_rank);
  cluster.device = config.train.device;
  const Plan plan = plan_layouts(config, cluster, kAutoMargin);
  if (!plan.fits()) {
    throw ConfigError(config.source_file + ": parallel.mode auto: " +
                      format_no_fit(config, plan, levers_for(config, plan)));
  }
  return {apply_layout(config, plan.candidates.front().layout), format_plan_choice(config, plan)};
}

}  // namespace lt
