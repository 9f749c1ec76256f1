#include "trainer/plan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "trainer/byte_size.h"
#include "trainer/format.h"

namespace lt {
namespace {

double as_gib(std::int64_t bytes) {
  return static_cast<double>(bytes) / static_cast<double>(kGiB);
}

std::string seconds(double s) {
  if (s == 0.0) return "0 s";
  if (s >= 1.0) return fmt::format("{:.2f} s", s);
  if (s >= 1e-3) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.1f} us", s * 1e6);
}

const char* unit_of(const Plan& plan) {
  return device_noun(plan.cluster);
}

std::string header(const Config& base, const Plan& plan) {
  const ModelConfig& m = base.model;
  const std::int64_t tokens = base.train.global_batch * base.data.seq_len;
  std::string out =
      fmt::format("plan for {}\n", base.source_file.empty() ? "config" : base.source_file);
  out += fmt::format(
      "  model: {} parameters ({} layers, dim {}), {}; data.seq_len {}; train.global_batch {} "
      "sequences = {} tokens per step\n",
      group_thousands(count_parameters(m)), m.layers, m.dim, base.precision,
      group_thousands(base.data.seq_len), base.train.global_batch, group_thousands(tokens));
  out += fmt::format("  cluster: {}\n", describe_cluster(plan.cluster));
  out += fmt::format("  budget: {} per {} ({} less a {:g}% margin)\n", format_size(plan.budget),
                     unit_of(plan), format_size(plan.cluster.memory_bytes), plan.margin * 100.0);
  out += fmt::format("  searched {} layouts: {} pass the config rules, {} fit",
                     group_thousands(plan.layouts_tried),
                     group_thousands(static_cast<std::int64_t>(plan.candidates.size())),
                     group_thousands(plan.fitting()));
  return out + "\n";
}

std::string memory_table(const Candidate& c, const Plan& plan) {
  std::string out = fmt::format("  memory per {}, predicted peak:\n", unit_of(plan));
  out += fmt::format("    {:<15} {:>18} {:>10}\n", "category", "bytes", "GiB");
  for (std::size_t i = 0; i < kNumMemCategories; ++i) {
    const std::int64_t bytes = c.memory.peak[i];
    out += fmt::format("    {:<15} {:>18} {:>10.2f}\n", category_name(static_cast<MemCategory>(i)),
                       group_thousands(bytes), as_gib(bytes));
  }
  const std::int64_t total = c.memory.total;
  out += fmt::format("    {:<15} {:>18} {:>10.2f}   of a {} budget ({:.0f}%)\n", "total",
                     group_thousands(total), as_gib(total), format_size(plan.budget),
                     100.0 * static_cast<double>(total) / static_cast<double>(plan.budget));
  return out;
}

std::string timing(const Config& base, const Candidate& c, const Plan& plan) {
  const StepTime& t = c.time;
  const Config config = apply_layout(base, c.layout);
  const double tokens = static_cast<double>(base.train.global_batch * base.data.seq_len);
  std::string out = fmt::format(
      "  step time {}: compute {} + exposed communication {} (tp {}, cp {}, dp/zero {})\n",
      seconds(t.total_s()), seconds(t.compute_s), seconds(t.communication_s()), seconds(t.tp_s),
      seconds(t.cp_s), seconds(t.dp_s));
  out += fmt::format(
      "  throughput {} tokens/s, MFU {:.1f}% (per step {:.3g} model FLOPs, {:.3g} with "
      "recompute)\n",
      group_thousands(std::llround(tokens / t.total_s())),
      100.0 * model_flops_utilization(t, config, plan.cluster), t.model_flops, t.hardware_flops);
  return out;
}

// Why `c` lost to `chosen`: slower, or over the budget.
std::string verdict(const Candidate& c, const Candidate& chosen) {
  if (c.fits()) {
    return fmt::format("{}, {:.1f}% slower", seconds(c.time.total_s()),
                       100.0 * (c.time.total_s() / chosen.time.total_s() - 1.0));
  }
  return fmt::format("needs {}, {} over the budget", format_size(c.memory.total),
                     format_size(c.over_budget));
}

// The first candidate, in plan order (the fastest that fits, or else the closest to fitting),
// of every group with an equal `key`, among those `keep` accepts.
template <class Key, class Keep>
std::vector<const Candidate*> first_of_each(const Plan& plan, Key key, Keep keep) {
  std::map<decltype(key(Layout{})), const Candidate*> seen;
  std::vector<const Candidate*> out;
  for (const Candidate& c : plan.candidates) {
    if (keep(c.layout) && seen.emplace(key(c.layout), &c).second) out.push_back(&c);
  }
  return out;
}

auto mesh_of(const Layout& l) {
  return std::make_tuple(l.tp, l.cp, l.dp);
}

auto all_but_recompute(const Layout& l) {
  return std::make_tuple(l.tp, l.cp, l.dp, l.zero_stage, l.micro_batch);
}

// Why the chosen layout recomputes what it does: the nearest mix that recomputes less, all
// else equal.
std::string why_recompute(const Config& base, const Plan& plan) {
  const Candidate& chosen = plan.candidates.front();
  const std::int64_t layers = base.model.layers, weight = chosen.layout.recompute.weight(layers);
  const Candidate* nearest = nullptr;
  for (const Candidate& c : plan.candidates) {
    const std::int64_t w = c.layout.recompute.weight(layers);
    if (all_but_recompute(c.layout) != all_but_recompute(chosen.layout) || w >= weight) continue;
    if (!nearest || w > nearest->layout.recompute.weight(layers)) nearest = &c;
  }
  if (!nearest) return "";
  return fmt::format("    recompute {} instead: {}\n", nearest->layout.recompute.describe(layers),
                     verdict(*nearest, chosen));
}

// Why the chosen ZeRO stage: the best of each lower stage on the same mesh.
std::string why_zero(const Config& base, const Plan& plan) {
  const Candidate& chosen = plan.candidates.front();
  const auto lower = [&](const Layout& l) {
    return mesh_of(l) == mesh_of(chosen.layout) && l.zero_stage < chosen.layout.zero_stage;
  };
  std::string out;
  for (const Candidate* c : first_of_each(
           plan, [](const Layout& l) { return l.zero_stage; }, lower)) {
    out += fmt::format("    zero {} instead ({}): {}\n", c->layout.zero_stage,
                       describe_layout(c->layout, base.model.layers), verdict(*c, chosen));
  }
  return out;
}

std::string runners_up(const Config& base, const Plan& plan, std::size_t top) {
  const Candidate& chosen = plan.candidates.front();
  const auto other_mesh = [&](const Layout& l) { return mesh_of(l) != mesh_of(chosen.layout); };
  std::vector<std::string> slower, too_big;
  for (const Candidate* c : first_of_each(plan, mesh_of, other_mesh)) {
    std::vector<std::string>& list = c->fits() ? slower : too_big;
    if (list.size() < top) {
      list.push_back(fmt::format("    {}: {}\n", describe_layout(c->layout, base.model.layers),
                                 verdict(*c, chosen)));
    }
  }
  std::string out;
  if (!slower.empty()) out += "\nrunners-up (the fastest layout of each other tp x cp x dp):\n";
  for (const std::string& line : slower) out += line;
  if (!too_big.empty()) out += "\nmeshes where nothing fits (their leanest layout):\n";
  for (const std::string& line : too_big) out += line;
  return out;
}

}  // namespace

std::string format_plan(const Config& base, const Plan& plan, std::size_t top) {
  const Candidate& chosen = plan.candidates.front();
  const Layout& l = chosen.layout;
  std::string out = header(base, plan);
  out += fmt::format("\nchosen: {}{}\n", describe_layout(l, base.model.layers),
                     l.tp > 1 && base.parallel.sequence_parallel ? ", sequence parallel" : "");
  out += memory_table(chosen, plan);
  out += timing(base, chosen, plan);
  const std::string why = why_recompute(base, plan) + why_zero(base, plan);
  if (!why.empty()) out += "  why not less:\n" + why;
  return out + runners_up(base, plan, top);
}

std::string format_no_fit(const Config& base, const Plan& plan, const std::vector<Lever>& levers) {
  std::string out = header(base, plan);
  const Candidate& leanest = plan.candidates.front();
  const std::int64_t world = plan.cluster.world();
  out += fmt::format("\ndoes not fit: no layout of {} {}{} fits in {} per {}\n", world,
                     unit_of(plan), world == 1 ? "" : "s", format_size(plan.budget), unit_of(plan));
  out += fmt::format("  the leanest layout, {}, needs {}: {} missing\n",
                     describe_layout(leanest.layout, base.model.layers),
                     format_size(leanest.memory.total), format_size(leanest.over_budget));
  out += memory_table(leanest, plan);
  out += "levers, the most helpful first:\n";
  for (const Lever& lever : levers) out += fmt::format("  {}: {}\n", lever.name, lever.effect);
  return out;
}

std::string format_plan_choice(const Config& base, const Plan& plan) {
  const Candidate& chosen = plan.candidates.front();
  return fmt::format(
      "planner: {}; predicted peak {} per {} (budget {}), estimated step {} ({} of {} layouts "
      "fit)",
      describe_layout(chosen.layout, base.model.layers), format_size(chosen.memory.total),
      unit_of(plan), format_size(plan.budget), seconds(chosen.time.total_s()),
      group_thousands(plan.fitting()),
      group_thousands(static_cast<std::int64_t>(plan.candidates.size())));
}

}  // namespace lt
