// The long-context extension recipe through the CLI: a run starts from another run's checkpoint
// (model.init_from) with exactly its weights, and continues at four times the sequence length
// with RoPE scaling, starting far below a random initialization's loss.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "tests/cli_runner.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_longtrain;

fs::path work_dir() {
  static const fs::path dir = [] {
    // Per process: ctest runs each test as its own process, possibly several at once.
    const fs::path d = fs::path(testing::TempDir()) / ("long_context_" + std::to_string(getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    std::ofstream(d / "short.yaml") << R"(
model: {dim: 128, layers: 2, heads: 4, kv_heads: 4, ffn: 352, vocab: 192, rope_theta: 10000}
data: {seq_len: 64, num_pairs: 4, num_queries: 24}
train: {steps: 600, global_batch: 16, micro_batch: 16, eval_every: 600, eval_samples: 32, seed: 5}
optim: {lr: 1.0e-3, min_lr: 1.0e-4, warmup: 30, weight_decay: 0.1}
precision: fp32
)";
    return d;
  }();
  return dir;
}

// Trains `extra` on top of short.yaml; returns the output (exit code checked).
std::string train(const std::string& name, const std::string& extra) {
  const fs::path dir = work_dir();
  const CliResult r = run_longtrain("train --config " + (dir / "short.yaml").string() +
                                    " --set logging.dir=" + (dir / name).string() + " " + extra);
  EXPECT_EQ(r.code, 0) << r.output;
  return r.output;
}

// The eval loss logged at `step` in a run's metrics.jsonl (full precision).
double eval_loss(const std::string& name, int step) {
  std::ifstream in(work_dir() / name / "metrics.jsonl");
  const std::regex eval("\\{\"step\": " + std::to_string(step) +
                        ", \"split\": \"eval\", \"loss\": ([-+.e0-9]+)");
  std::smatch m;
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, m, eval)) return std::stod(m[1]);
  ADD_FAILURE() << "no eval at step " << step << " in " << name;
  return 0.0;
}

// The short run, trained once per test process.
const fs::path& short_run_checkpoints() {
  static const fs::path ckpt = [] {
    const fs::path c = work_dir() / "short_ckpt";
    train("short", "--set checkpoint.dir=" + c.string());
    return c;
  }();
  return ckpt;
}

TEST(LongContext, InitFromACheckpointStartsFromItsWeights) {
  const fs::path ckpt = short_run_checkpoints();
  // Same data, same model: the eval before the first step sees the saved weights, so it equals
  // the short run's last eval exactly.
  const std::string out = train("same", "--set model.init_from=" + ckpt.string() +
                                            " --set train.steps=1 --set train.eval_every=1");
  EXPECT_NE(out.find("weights from " + (ckpt / "step_00000600").string() + " (step 600)"),
            std::string::npos)
      << out;
  EXPECT_EQ(eval_loss("same", 0), eval_loss("short", 600));
}

TEST(LongContext, ExtendsToFourTimesTheLengthWithRopeScaling) {
  const fs::path ckpt = short_run_checkpoints();
  const std::string longer =
      " --set data.seq_len=256 --set data.num_queries=96 --set train.steps=10"
      " --set train.eval_every=10 --set optim.warmup=0 --set optim.lr=3.0e-4";
  train("random", longer);
  std::map<std::string, double> before;
  for (const std::string type : {"none", "linear", "ntk", "yarn"}) {
    SCOPED_TRACE(type);
    const std::string name = "extended_" + type;
    train(name, longer + " --set model.init_from=" + ckpt.string() +
                    " --set model.rope_scaling.type=" + type +
                    " --set model.rope_scaling.factor=4"
                    " --set model.rope_scaling.original_max_position=64");
    // Starting from the short run's weights, the longer context begins far below a random
    // start (ln 192 = 5.26) and stays below it after the same steps.
    std::printf(
        "%-6s eval loss at seq 256: %.4f before, %.4f after 10 steps (random init: %.4f, %.4f)\n",
        type.c_str(), eval_loss(name, 0), eval_loss(name, 10), eval_loss("random", 0),
        eval_loss("random", 10));
    EXPECT_LT(eval_loss(name, 0), 0.5 * eval_loss("random", 0));
    EXPECT_LT(eval_loss(name, 10), eval_loss("random", 10));
    EXPECT_TRUE(std::isfinite(eval_loss(name, 10)));
    before[type] = eval_loss(name, 0);
  }
  // Before any training at the new length, the scalings that keep the high frequencies (NTK,
  // YaRN) recall better than positions beyond the trained range (none).
  EXPECT_LT(before["yarn"], before["none"]);
  EXPECT_LT(before["ntk"], before["none"]);
}

TEST(LongContext, InitFromAMissingCheckpointExitsTwo) {
  const fs::path dir = work_dir();
  fs::create_directories(dir / "empty_root" / "step_00000007");
  const CliResult r = run_longtrain("train --config " + (dir / "short.yaml").string() +
                                    " --set model.init_from=" + (dir / "empty_root").string() +
                                    " --set logging.dir=" + (dir / "missing").string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("model.init_from"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lt
