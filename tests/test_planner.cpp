// The planner: the layouts it enumerates are exactly the valid ones, it ranks them by step time
// then simplicity, it finds a layout for Llama-3-8B at 128K tokens on 8 GPUs, pure data
// parallelism for a 10M-parameter model, and a shortfall with levers when nothing fits; the
// step-time model's terms; `parallel.mode: auto` resolution; size and flag parsing.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "layers/flops.h"
#include "trainer/auto_layout.h"
#include "trainer/byte_size.h"
#include "trainer/config.h"
#include "trainer/plan_flags.h"
#include "trainer/plan_report.h"
#include "trainer/planner.h"
#include "trainer/step_time.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

const std::string kLlama3 = std::string(LT_SOURCE_DIR) + "/configs/llama3-8b-128k.yaml";
const std::string kQuickstart = std::string(LT_SOURCE_DIR) + "/configs/quickstart.yaml";

// About 9.3M parameters: 4.2M in the untied embedding and head, 0.85M per block.
const char* const kTenMillion = R"(
model: {dim: 256, layers: 6, heads: 8, kv_heads: 8, ffn: 768, vocab: 8192}
data: {seq_len: 1024}
train: {global_batch: 64, micro_batch: 8}
precision: bf16
)";

ClusterSpec one_gpu_of(std::int64_t gib) {
  ClusterSpec k;
  k.devices_per_node = 1;
  k.memory_bytes = gib * kGiB;
  return k;
}

// The config `longtrain train` would run: the chosen layout as --set overrides, read back
// through the validator.
Config reparsed(const std::string& path, const Layout& l, std::int64_t layers) {
  std::string recompute = l.recompute.choice(layers).list ? "[" : "";
  const PerLayerChoice choice = l.recompute.choice(layers);
  for (std::size_t i = 0; i < choice.values.size(); ++i) {
    recompute += (i ? "," : "") + choice.values[i];
  }
  if (choice.list) recompute += "]";
  return load_config(
      path, {"parallel.mode=manual", "parallel.tp=" + std::to_string(l.tp),
             "parallel.cp=" + std::to_string(l.cp), "parallel.dp=" + std::to_string(l.dp),
             "parallel.zero_stage=" + std::to_string(l.zero_stage),
             "train.micro_batch=" + std::to_string(l.micro_batch), "train.recompute=" + recompute});
}

TEST(Planner, Llama3ConfigHasThePublishedParameterCount) {
  EXPECT_EQ(count_parameters(load_config(kLlama3).model), 8'030'261'248);
}

// Acceptance: Llama-3-8B at 128K tokens on 8 GPUs of 80 GiB fits, and the choice splits the
// sequence or the layers and recomputes: a whole 128K sequence's activations cannot sit on one
// GPU.
TEST(Planner, Llama3At128KFitsOnEightGpusOf80GiB) {
  const Config base = load_config(kLlama3);
  const Plan plan = plan_layouts(base, ClusterSpec{}, 0.1);
  ASSERT_TRUE(plan.fits());
  EXPECT_EQ(plan.budget, 77'309'411'328);  // 0.9 x 80 GiB
  const Candidate& best = plan.candidates.front();
  const Layout& l = best.layout;
  EXPECT_LE(best.memory.total, plan.budget);
  EXPECT_EQ(l.tp * l.cp * l.dp, 8);
  EXPECT_TRUE(l.cp > 1 || l.tp > 1) << describe_layout(l, 32);
  EXPECT_GT(l.recompute.weight(32), 0) << describe_layout(l, 32);
  // What the plan says is what the memory model predicts for the config the trainer would run.
  Config chosen = reparsed(kLlama3, l, 32);
  chosen.train.device = "cuda";
  EXPECT_EQ(predict_memory(chosen).total, best.memory.total);
  const std::string report = format_plan(base, plan, 5);
  for (const char* part :
       {"chosen: ", "activations", "of a 72.00 GiB budget", "MFU", "why not less", "runners-up"}) {
    EXPECT_NE(report.find(part), std::string::npos) << part << " not in:\n" << report;
  }
}

// Acceptance: a model this small is fastest with every GPU a data-parallel replica.
TEST(Planner, TenMillionParameterModelIsPureDataParallel) {
  const Config base = parse_config(kTenMillion, "small.yaml");
  EXPECT_NEAR(static_cast<double>(count_parameters(base.model)), 1e7, 1e6);
  const Plan plan = plan_layouts(base, ClusterSpec{}, 0.1);
  ASSERT_TRUE(plan.fits());
  const Layout& l = plan.candidates.front().layout;
  EXPECT_EQ(std::make_tuple(l.tp, l.cp, l.dp, l.zero_stage), std::make_tuple(1, 1, 8, 0))
      << describe_layout(l, 6);
  EXPECT_EQ(l.recompute.describe(6), "none");
}

// Acceptance: an impossible case says so, with the shortfall and a lever that is computed (the
// planner rerun with more GPUs), not assumed.
TEST(Planner, ImpossibleCaseReportsTheShortfallAndTheLeverThatHelps) {
  const Config base = load_config(kLlama3);
  const Plan plan = plan_layouts(base, one_gpu_of(16), 0.1);
  ASSERT_FALSE(plan.fits());
  EXPECT_EQ(plan.fitting(), 0);
  const Candidate& leanest = plan.candidates.front();
  EXPECT_GT(leanest.over_budget, 0);
  EXPECT_EQ(leanest.over_budget, leanest.memory.total - plan.budget);
  const std::vector<Lever> levers = levers_for(base, plan);
  ASSERT_EQ(levers.size(), 3u);
  // The model state alone is 18 bytes per parameter: only more GPUs (ZeRO over them) helps.
  EXPECT_EQ(levers[0].name, "more GPUs");
  EXPECT_NE(levers[0].effect.find("fits on"), std::string::npos) << levers[0].effect;
  EXPECT_GT(levers[0].first_step_saving, levers[1].first_step_saving);
  EXPECT_EQ(levers[2].name, "more memory per GPU");
  const std::string report = format_no_fit(base, plan, levers);
  for (const char* part : {"does not fit", "GiB missing", "levers", "more GPUs: fits on"}) {
    EXPECT_NE(report.find(part), std::string::npos) << part << " not in:\n" << report;
  }
}

// When only the sequence is too long, shortening it is a lever that works.
TEST(Planner, ShorterSequencesIsTheLeverWhenActivationsAreTheProblem) {
  Config base = parse_config(kTenMillion, "small.yaml");
  base.data.seq_len = 1 << 20;
  base.train.global_batch = 1;
  const Plan plan = plan_layouts(base, one_gpu_of(2), 0.1);
  ASSERT_FALSE(plan.fits());
  const std::vector<Lever> levers = levers_for(base, plan);
  const auto shorter = std::find_if(levers.begin(), levers.end(),
                                    [](const Lever& l) { return l.name == "shorter sequences"; });
  ASSERT_NE(shorter, levers.end());
  EXPECT_GT(shorter->first_step_saving, 0);
  EXPECT_NE(shorter->effect.find("fits at data.seq_len"), std::string::npos) << shorter->effect;
}

// The candidates are exactly the layouts the rules allow, enumerated independently here:
// tp x cp x dp = world, tp inside a node and dividing heads and ffn (and kv_heads, or a
// multiple of it), 2 cp dividing seq_len, tp dividing a micro-batch's tokens per cp rank
// (sequence parallel), micro_batch x dp dividing the global batch; ZeRO stages only with a
// replica group; 2 x layers + 1 recompute mixes each.
TEST(Planner, EnumeratesExactlyTheLayoutsTheRulesAllow) {
  const Config base = parse_config(R"(
model: {dim: 96, layers: 3, heads: 6, kv_heads: 2, ffn: 200, vocab: 64}
data: {seq_len: 12}
train: {global_batch: 12, micro_batch: 1}
)",
                                   "odd.yaml");
  ClusterSpec k;
  k.nodes = 3;
  k.devices_per_node = 4;
  const Plan plan = plan_layouts(base, k, 0.1);
  std::set<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t>> want;
  for (std::int64_t tp = 1; tp <= 12; ++tp) {
    for (std::int64_t cp = 1; cp <= 12; ++cp) {
      if (12 % (tp * cp) != 0) continue;
      const std::int64_t dp = 12 / (tp * cp);
      const bool tp_ok =
          4 % tp == 0 && 6 % tp == 0 && 200 % tp == 0 && (2 % tp == 0 || tp % 2 == 0);
      if (!tp_ok || (cp > 1 && 12 % (2 * cp) != 0)) continue;
      for (std::int64_t b = 1; b <= 12; ++b) {
        if (12 % (b * dp) != 0 || (b * 12 / cp) % tp != 0) continue;
        for (std::int64_t z = 0; z <= (dp * cp > 1 ? 3 : 0); ++z) want.insert({tp, cp, dp, z, b});
      }
    }
  }
  std::set<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t>> got;
  for (const Candidate& c : plan.candidates) {
    const Layout& l = c.layout;
    got.insert({l.tp, l.cp, l.dp, l.zero_stage, l.micro_batch});
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(plan.candidates.size(), want.size() * 7);  // none, selective, 2 x 2 mixes, full
  EXPECT_GT(plan.layouts_tried, static_cast<std::int64_t>(plan.candidates.size()));
}

TEST(Planner, TensorParallelStaysInsideANode) {
  const Config base = load_config(kLlama3);
  ClusterSpec k;
  k.nodes = 4;
  k.devices_per_node = 2;
  for (const Candidate& c : plan_layouts(base, k, 0.1).candidates) EXPECT_LE(c.layout.tp, 2);
}

// Fitting layouts first, fastest first; then the rest, closest to fitting first. Among equal
// times the simpler layout wins (here: every micro-batch of pure dp costs the same compute).
TEST(Planner, RanksByStepTimeThenSimplicity) {
  const Config base = parse_config(kTenMillion, "small.yaml");
  const Plan plan = plan_layouts(base, ClusterSpec{}, 0.1);
  for (std::size_t i = 1; i < plan.candidates.size(); ++i) {
    const Candidate &a = plan.candidates[i - 1], &b = plan.candidates[i];
    if (a.fits() && b.fits()) {
      EXPECT_LE(a.time.total_s(), b.time.total_s() * (1 + 1e-12));
    } else if (a.fits()) {
      continue;
    } else {
      EXPECT_FALSE(b.fits());
      EXPECT_LE(a.over_budget, b.over_budget);
    }
  }
  const Candidate& best = plan.candidates.front();
  for (const Candidate& c : plan.candidates) {
    if (c.time.total_s() != best.time.total_s() || !c.fits()) continue;
    EXPECT_GE(c.layout.tp * c.layout.cp, best.layout.tp * best.layout.cp);
    EXPECT_GE(c.layout.recompute.weight(6), best.layout.recompute.weight(6));
  }
}

TEST(Planner, RecomputeMixesPutFullOnTheFirstBlocks) {
  const RecomputeMix mix{2, Recompute::selective};
  const PerLayerChoice c = mix.choice(4);
  EXPECT_TRUE(c.list);
  EXPECT_EQ(c.values, (std::vector<std::string>{"full", "full", "selective", "selective"}));
  EXPECT_EQ(mix.describe(4), "full x2 then selective");
  EXPECT_EQ((RecomputeMix{4, Recompute::none}).choice(4), PerLayerChoice("full"));
  EXPECT_EQ((RecomputeMix{0, Recompute::selective}).describe(4), "selective");
  // none < selective < one full block < one full block and selective < ... < full
  EXPECT_LT((RecomputeMix{0, Recompute::selective}).weight(4),
            (RecomputeMix{1, Recompute::none}).weight(4));
  EXPECT_LT((RecomputeMix{1, Recompute::selective}).weight(4),
            (RecomputeMix{2, Recompute::none}).weight(4));
}

// ---- the step-time model ----

Config layout_of(const Config& base, Layout l) {
  return apply_layout(base, l);
}

TEST(StepTime, ComputeIsHardwareFlopsAtTheSustainedRate) {
  const Config base = load_config(kLlama3);
  const ClusterSpec k;
  const Config c = layout_of(base, {1, 8, 1, 3, 1, {32, Recompute::none}});
  const StepTime t = estimate_step_time(c, k);
  const std::vector<std::int64_t> docs(8, 131072);
  const StepFlops f = step_flops(c.model, docs, std::vector<Recompute>{Recompute::full});
  EXPECT_DOUBLE_EQ(t.hardware_flops, f.hardware);
  EXPECT_DOUBLE_EQ(t.model_flops, f.model);
  EXPECT_DOUBLE_EQ(t.compute_s, f.hardware / (8 * 400e12));
  EXPECT_NEAR(model_flops_utilization(t, c, k), f.model / (t.total_s() * 8 * 989e12), 1e-12);
}

TEST(StepTime, OneRankHasNoCommunication) {
  const Config c = parse_config(kTenMillion, "small.yaml");
  ClusterSpec k = one_gpu_of(80);
  const StepTime t = estimate_step_time(c, k);
  EXPECT_EQ(t.communication_s(), 0.0);
  EXPECT_GT(t.compute_s, 0.0);
}

// The alpha-beta terms respond to what they model: groups that leave the node are slower,
// tensor parallelism costs per micro-batch, and ZeRO-3 gathers more than ZeRO-0 reduces.
TEST(StepTime, CommunicationFollowsTheLinksAndTheLayout) {
  const Config base = parse_config(kTenMillion, "small.yaml");
  ClusterSpec one_node, two_nodes;
  two_nodes.nodes = 2;
  two_nodes.devices_per_node = 4;
  const Config dp8 = layout_of(base, {1, 1, 8, 0, 8, {}});
  EXPECT_GT(estimate_step_time(dp8, two_nodes).dp_s, estimate_step_time(dp8, one_node).dp_s);
  const Config tp2 = layout_of(base, {2, 1, 4, 0, 8, {}});
  EXPECT_GT(estimate_step_time(tp2, one_node).tp_s, 0.0);
  EXPECT_GT(estimate_step_time(layout_of(base, {2, 1, 4, 0, 2, {}}), one_node).tp_s,
            estimate_step_time(tp2, one_node).tp_s);  // 4 x the micro-batches, 4 x the latency
  EXPECT_GT(estimate_step_time(layout_of(base, {1, 1, 8, 3, 8, {}}), one_node).dp_s,
            estimate_step_time(dp8, one_node).dp_s);
  EXPECT_EQ(estimate_step_time(dp8, one_node).tp_s, 0.0);
  EXPECT_EQ(estimate_step_time(dp8, one_node).cp_s, 0.0);
}

// ---- parallel.mode: auto ----

TEST(AutoLayout, ResolvesTheQuickstartForFourRanks) {
  const Config config = load_config(kQuickstart, {"parallel.mode=auto"});
  const AutoLayout chosen = resolve_auto_layout(config, 4, 4, 4 * kGiB);
  const ParallelConfig& p = chosen.config.parallel;
  EXPECT_EQ(p.mode, "manual");
  EXPECT_EQ(p.tp * p.cp * p.dp, 4);
  EXPECT_EQ(chosen.config.train.device, config.train.device);
  EXPECT_EQ(chosen.message.rfind("planner: tp ", 0), 0u) << chosen.message;
  EXPECT_NE(chosen.message.find("MiB per rank"), std::string::npos) << chosen.message;
  // The same inputs give the same plan (every rank computes it).
  EXPECT_EQ(resolve_auto_layout(config, 4, 4, 4 * kGiB).message, chosen.message);
}

TEST(AutoLayout, NothingFitsIsAConfigErrorWithTheShortfall) {
  const Config config = load_config(kQuickstart, {"parallel.mode=auto"});
  try {
    resolve_auto_layout(config, 2, 2, 1 << 20);
    FAIL() << "1 MiB per rank fitted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("parallel.mode auto"), std::string::npos) << what;
    EXPECT_NE(what.find("does not fit"), std::string::npos) << what;
    EXPECT_NE(what.find("MiB missing"), std::string::npos) << what;
  }
}

TEST(AutoLayout, MemoryPerRankComesFromTheKeyOrTheHost) {
  Config config;
  config.parallel.memory_per_rank_gib = 1.5;
  EXPECT_EQ(auto_memory_per_rank(config, 4), 3 * kGiB / 2);
  config.parallel.memory_per_rank_gib = 0;
  EXPECT_GT(auto_memory_per_rank(config, 1), auto_memory_per_rank(config, 4));
}

TEST(AutoLayout, TrainerRefusesAnUnresolvedAutoMode) {
  Config config = load_config(kQuickstart, {"parallel.mode=auto"});
  try {
    Trainer trainer(config, ProcessInfo{});
    FAIL() << "a Trainer accepted parallel.mode auto";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("resolved by `longtrain train`"), std::string::npos)
        << e.what();
  }
}

// ---- sizes and flags ----

TEST(ByteSize, ParsesUnitsAndRefusesTheRest) {
  EXPECT_EQ(parse_byte_size("80GiB"), 80 * kGiB);
  EXPECT_EQ(parse_byte_size("80 gib"), 80 * kGiB);
  EXPECT_EQ(parse_byte_size("85899345920"), 80 * kGiB);
  EXPECT_EQ(parse_byte_size("80GB"), 80'000'000'000);
  EXPECT_EQ(parse_byte_size("1.5TiB"), 1536 * kGiB);
  EXPECT_EQ(parse_byte_size("512MiB"), kGiB / 2);
  EXPECT_EQ(parse_byte_size("100B"), 100);
  for (const char* bad : {"", "GiB", "80XB", "-1GiB", "-5", "1.5", "80GiBs", "1e30TB"}) {
    EXPECT_FALSE(parse_byte_size(bad).has_value()) << bad;
  }
  EXPECT_EQ(format_size(80 * kGiB), "80.00 GiB");
  EXPECT_EQ(format_size(30'000'000), "28.6 MiB");
  EXPECT_EQ(format_size(512), "512 bytes");
  EXPECT_EQ(format_size(943718), "943,718 bytes");
}

TEST(PlanFlags, SetTheClusterAndRefuseBadValues) {
  PlanSettings s;
  apply_plan_flag(s, "--nodes", "4");
  apply_plan_flag(s, "--gpu-mem", "141GB");
  apply_plan_flag(s, "--latency-us", "7");
  apply_plan_flag(s, "--margin", "0.2");
  EXPECT_EQ(s.cluster.world(), 32);
  EXPECT_EQ(s.cluster.memory_bytes, 141'000'000'000);
  EXPECT_EQ(s.cluster.intra.latency_us, 7.0);
  EXPECT_EQ(s.cluster.inter.latency_us, 7.0);
  EXPECT_EQ(s.margin, 0.2);
  for (const auto& [flag, value] :
       {std::pair{"--nodes", "0"}, std::pair{"--gpu-mem", "lots"}, std::pair{"--margin", "1"},
        std::pair{"--tflops", "-3"}, std::pair{"--top", "2.5"}}) {
    try {
      apply_plan_flag(s, flag, value);
      ADD_FAILURE() << flag << " " << value << " accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(flag), std::string::npos) << what;
      EXPECT_NE(what.find(std::string("'") + value + "'"), std::string::npos) << what;
    }
  }
  EXPECT_TRUE(is_plan_flag("--intra-gbps"));
  EXPECT_FALSE(is_plan_flag("--config"));
}

}  // namespace
}  // namespace lt
