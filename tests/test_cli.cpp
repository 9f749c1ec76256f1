// The `longtrain` binary as a user meets it: exit codes and messages for bad input, the params
// command on real HuggingFace configs, and a short training run.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/cli_runner.h"

namespace {

using Result = lt::test::CliResult;

Result run(const std::string& args) {
  return lt::test::run_longtrain(args);
}

std::filesystem::path temp_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::path(testing::TempDir()) / name;
  std::ofstream(path) << text;
  return path;
}

const std::string kHfDir = std::string(LT_SOURCE_DIR) + "/../shared/hf_configs/";

TEST(Cli, ParamsPrintsExactCountsForRealModels) {
  for (const auto& [file, count] :
       {std::pair{"llama-2-7b.json", "6,738,415,616"}, std::pair{"qwen2-7b.json", "7,615,616,512"},
        std::pair{"tinyllama-1.1b.json", "1,100,048,384"}}) {
    const Result r = run("params --hf-config " + kHfDir + file);
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find(count), std::string::npos) << file << ": " << r.output;
  }
}

TEST(Cli, BadConfigExitsTwoWithTheFileKeyAndSuggestion) {
  const auto path = temp_file("cli_bad.yaml", "train:\n  stesp: 10\n");
  const Result r = run("train --config " + path.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("cli_bad.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.stesp"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.steps"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
}

TEST(Cli, MissingFilesAndBadOverridesExitTwo) {
  Result r = run("train --config /nonexistent/run.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("/nonexistent/run.yaml"), std::string::npos) << r.output;

  const auto ok = temp_file("cli_ok.yaml", "train: {steps: 2}\n");
  r = run("train --config " + ok.string() + " --set train.steps=many");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("many"), std::string::npos) << r.output;

  r = run("train --config " + ok.string() + " --set data.source=text --set data.path=missing.txt");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("missing.txt"), std::string::npos) << r.output;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("train").code, 2);
  EXPECT_EQ(run("train --config").code, 2);
  EXPECT_EQ(run("params --bogus x").code, 2);
  EXPECT_EQ(run("help").code, 0);
}

TEST(Cli, ShortTrainingRunWritesMetrics) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "cli_run";
  std::filesystem::remove_all(dir);
  const auto cfg = temp_file("cli_train.yaml", R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 3, global_batch: 2, micro_batch: 1, eval_every: 2, eval_samples: 4}
precision: fp32
)");
  const Result r = run("train --config " + cfg.string() + " --set logging.dir=" + dir.string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("eval @ step 0"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "metrics.jsonl"));
  std::filesystem::remove_all(dir);
}

// The console's progress line carries MFU when the peak is known; the run ends with a summary;
// metrics.jsonl's mfu is model TFLOP/s over the peak.
TEST(Cli, ProgressLineHasMfuAndTheRunEndsWithASummary) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "cli_mfu";
  std::filesystem::remove_all(dir);
  const auto cfg = temp_file("cli_mfu.yaml", R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 3, global_batch: 2, micro_batch: 1, eval_every: 3, eval_samples: 4}
precision: fp32
logging: {peak_tflops: 0.25}
)");
  const Result r = run("train --config " + cfg.string() + " --set logging.dir=" + dir.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("tok/s, MFU "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("done: 3 steps in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("summary: last eval (step 3) loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("summary: peak memory of the last step on this rank"), std::string::npos)
      << r.output;
  std::ifstream metrics(dir / "metrics.jsonl");
  int checked = 0;
  for (std::string line; std::getline(metrics, line);) {
    if (line.find("\"split\": \"train\"") == std::string::npos) continue;
    auto field = [&](const std::string& key) {
      const auto at = line.find("\"" + key + "\": ");
      EXPECT_NE(at, std::string::npos) << key << " in " << line;
      return std::stod(line.substr(at + key.size() + 4));
    };
    EXPECT_NEAR(field("mfu"), field("model_tflops_per_s") / 0.25, 1e-6 * field("mfu"));
    ++checked;
  }
  EXPECT_EQ(checked, 3);
  std::filesystem::remove_all(dir);
}

// --memory-report: one table after the first step whose rows are the metrics' first-step peaks.
TEST(Cli, MemoryReportPrintsTheFirstStepPeaks) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "cli_memory";
  std::filesystem::remove_all(dir);
  const auto cfg = temp_file("cli_memory.yaml", R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 2, global_batch: 2, micro_batch: 1, eval_every: 0}
precision: fp32
)");
  const Result r =
      run("train --config " + cfg.string() + " --memory-report --set logging.dir=" + dir.string());
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_NE(r.output.find("memory after the first step, rank 0 of 1"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("predicted peak"), std::string::npos) << r.output;
  std::ifstream metrics(dir / "metrics.jsonl");
  std::string line, first_train;
  while (std::getline(metrics, line)) {
    if (line.find("\"split\": \"train\"") != std::string::npos) {
      first_train = line;
      break;
    }
  }
  ASSERT_FALSE(first_train.empty());
  // The activations row shows the step's peak as the metrics record it, digits grouped.
  const std::string key = "\"mem_peak_activations\": ";
  const auto at = first_train.find(key) + key.size();
  std::string digits = first_train.substr(at, first_train.find_first_of(",}", at) - at), grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  const auto row = r.output.find("  activations");
  ASSERT_NE(row, std::string::npos) << r.output;
  EXPECT_NE(r.output.substr(row, r.output.find('\n', row) - row).find(grouped), std::string::npos)
      << "activations peak " << grouped << " not in: " << r.output;
  EXPECT_EQ(run("params --memory-report --config " + cfg.string()).code, 2);
  std::filesystem::remove_all(dir);
}

// ---- plan ----

const std::string kLlama3 = std::string(LT_SOURCE_DIR) + "/configs/llama3-8b-128k.yaml";

void expect_all(const Result& r, std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    EXPECT_NE(r.output.find(part), std::string::npos) << "\"" << part << "\" not in:\n" << r.output;
  }
}

TEST(Cli, ParamsOfTheLlama3ConfigAreThePublishedCount) {
  const Result r = run("params --config " + kLlama3);
  EXPECT_EQ(r.code, 0) << r.output;
  expect_all(r, {"8,030,261,248"});
}

// The chosen layout, its memory per category against the budget, the step time split into
// compute and communication, MFU, and the runners-up with why they lost.
TEST(Cli, PlanPrintsTheLayoutMemoryTableStepTimeAndRunnersUp) {
  const Result r = run("plan --config " + kLlama3);
  EXPECT_EQ(r.code, 0) << r.output;
  expect_all(r, {"1 node x 8 GPUs, 80.00 GiB each", "budget: 72.00 GiB per GPU", "chosen: tp ",
                 "weights", "grads", "optimizer", "activations", "workspace", "communication",
                 "of a 72.00 GiB budget", "step time", "exposed communication", "tokens/s", "MFU",
                 "why not less:", "runners-up", "% slower", "GiB over the budget"});
}

TEST(Cli, PlanOfASmallModelIsPureDataParallel) {
  const auto cfg = temp_file("cli_plan_small.yaml", R"(
model: {dim: 256, layers: 6, heads: 8, kv_heads: 8, ffn: 768, vocab: 8192}
data: {seq_len: 1024}
train: {global_batch: 64, micro_batch: 8}
precision: bf16
)");
  const Result r = run("plan --config " + cfg.string());
  EXPECT_EQ(r.code, 0) << r.output;
  expect_all(r, {"chosen: tp 1 cp 1 dp 8 zero 0 "});
}

// Exit 3 when nothing fits, with the shortfall and the levers.
TEST(Cli, PlanExitsThreeWithTheShortfallWhenNothingFits) {
  const Result r =
      run("plan --config " + kLlama3 + " --nodes 1 --gpus-per-node 1 --gpu-mem 16GiB --top 2");
  EXPECT_EQ(r.code, 3) << r.output;
  expect_all(r, {"does not fit: no layout of 1 GPU fits in 14.40 GiB per GPU", "GiB missing",
                 "levers, the most helpful first:", "more GPUs: fits on",
                 "more memory per GPU: GPUs of at least"});
}

TEST(Cli, PlanRefusesBadFlagValuesAndMissingArguments) {
  for (const char* args : {"--gpu-mem 80XB", "--gpu-mem 0", "--nodes 0", "--nodes two",
                           "--margin 1.5", "--tflops -1", "--top -1", "--intra-gbps fast"}) {
    const Result r = run("plan --config " + kLlama3 + " " + args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.output;
    const std::string flag = std::string(args).substr(0, std::string(args).find(' '));
    const std::string value = std::string(args).substr(flag.size() + 1);
    EXPECT_NE(r.output.find("invalid value '" + value + "' for " + flag), std::string::npos)
        << r.output;
  }
  const Result size = run("plan --config " + kLlama3 + " --gpu-mem 80XB");
  expect_all(size, {"80GiB, 80GB"});
  EXPECT_EQ(run("plan").code, 2);
  EXPECT_EQ(run("plan --config " + kLlama3 + " --gpus").code, 2);
  EXPECT_EQ(run("plan --config " + kLlama3 + " --nodes").code, 2);
  EXPECT_EQ(run("params --config " + kLlama3 + " --nodes 2").code, 2);
  EXPECT_EQ(run("plan --config " + kLlama3 + " --set model.kv_heads=7").code, 2);
}

}  // namespace
