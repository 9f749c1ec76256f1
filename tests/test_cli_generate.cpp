// `longtrain generate` as a user meets it: on a checkpoint a short training run wrote, its
// continuation is the library's (same model, same sampling), reproducible from the seed; the
// task-sample mode reports the data's expected answers; bad input exits 2 naming the flag.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli_runner.h"
#include "trainer/data.h"
#include "trainer/generate.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_longtrain;

// A checkpoint of a 2-step run of a byte-level model (vocab 256), written once per test binary.
const fs::path& checkpoint_root() {
  static const fs::path root = [] {
    // Per process: ctest runs each test as its own process, possibly several at once.
    const fs::path dir =
        fs::path(testing::TempDir()) / ("cli_generate_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path cfg = dir / "tiny.yaml";
    std::ofstream(cfg) << R"(
model: {dim: 32, layers: 2, heads: 2, kv_heads: 1, ffn: 64, vocab: 256}
data: {seq_len: 64, num_pairs: 4, num_queries: 6}
train: {steps: 2, global_batch: 2, micro_batch: 1, eval_every: 0}
precision: fp32
)";
    const CliResult r = run_longtrain("train --config " + cfg.string() +
                                      " --set logging.dir=" + (dir / "logs").string() +
                                      " --set checkpoint.dir=" + (dir / "ckpt").string());
    EXPECT_EQ(r.code, 0) << r.output;
    return dir / "ckpt";
  }();
  return root;
}

CliResult generate(const std::string& args) {
  return run_longtrain("generate --checkpoint " + checkpoint_root().string() + " " + args);
}

// The ids after "continuation:" in the output.
std::vector<std::int32_t> continuation(const std::string& output) {
  const auto at = output.find("continuation:");
  EXPECT_NE(at, std::string::npos) << output;
  std::istringstream line(output.substr(at + 13, output.find('\n', at) - at - 13));
  std::vector<std::int32_t> ids;
  for (std::int32_t id; line >> id;) ids.push_back(id);
  return ids;
}

GenerateOptions sampled(double temperature, std::int64_t top_k, double top_p, std::uint64_t seed) {
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.sampling = {temperature, top_k, top_p, seed};
  return o;
}

TEST(CliGenerate, ContinuationIsTheLibrarysAndFollowsTheSeed) {
  const InferenceModel loaded = load_checkpoint_model(checkpoint_root(), {});
  const std::vector<std::int32_t> prompt = {5, 17, 200, 3};
  const std::string flags = "--prompt-tokens 5,17,200,3 --max-new-tokens 12";
  const CliResult a = generate(flags + " --temperature 0.9 --top-k 40 --top-p 0.95 --seed 11");
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_EQ(continuation(a.output),
            generate(*loaded.model, prompt, sampled(0.9, 40, 0.95, 11)).tokens);
  const CliResult again = generate(flags + " --temperature 0.9 --top-k 40 --top-p 0.95 --seed 11");
  EXPECT_EQ(continuation(again.output), continuation(a.output));
  const CliResult other = generate(flags + " --temperature 0.9 --top-k 40 --top-p 0.95 --seed 12");
  EXPECT_NE(continuation(other.output), continuation(a.output));
  const CliResult greedy = generate(flags + " --temperature 0");
  EXPECT_EQ(continuation(greedy.output),
            generate(*loaded.model, prompt, sampled(0, 0, 1, 0)).tokens);
}

TEST(CliGenerate, TextPromptsAreBytesAndTheStopTokenEndsTheContinuation) {
  const CliResult r = generate("--prompt 'ab c' --max-new-tokens 8 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ab c"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("8 tokens in"), std::string::npos) << r.output;
  // The greedy continuation's first token as the stop token ends generation after one token.
  const CliResult ids = generate("--prompt-tokens 97,98,32,99 --max-new-tokens 8 --temperature 0");
  const std::int32_t first = continuation(ids.output).at(0);
  const CliResult stopped = generate(
      "--prompt-tokens 97,98,32,99 --max-new-tokens 8 "
      "--temperature 0 --stop-token " +
      std::to_string(first));
  EXPECT_EQ(continuation(stopped.output), std::vector<std::int32_t>{first});
  EXPECT_NE(stopped.output.find("ended by the stop token"), std::string::npos) << stopped.output;
}

TEST(CliGenerate, TaskSampleShowsTheDatasExpectedAnswers) {
  const CliResult r = generate("--task-sample 3 --queries 5 --temperature 0");
  ASSERT_EQ(r.code, 0) << r.output;
  // The expected answers are the scored targets of eval sample 3 of the run's data.
  const InferenceModel loaded = load_checkpoint_model(checkpoint_root(), {});
  const auto source = make_data_source(loaded.config->data, loaded.config->train.seed, ".");
  const Sample s = source->sample(Split::eval, 3);
  std::vector<std::string> expected;
  for (std::size_t i = 0; i < s.loss_mask.size() && expected.size() < 5; ++i)
    if (s.loss_mask[i] != 0.0f) expected.push_back(std::to_string(s.targets[i]));
  const std::regex line(R"(after token +(\d+) .*generated (\d+), expected (\d+) +(correct|wrong))");
  std::vector<std::string> reported;
  int correct = 0;
  for (std::sregex_iterator it(r.output.begin(), r.output.end(), line), end; it != end; ++it) {
    reported.push_back((*it)[3]);
    EXPECT_EQ((*it)[4] == "correct", (*it)[2] == (*it)[3]) << it->str();
    correct += (*it)[4] == "correct" ? 1 : 0;
  }
  EXPECT_EQ(reported, expected) << r.output;
  EXPECT_NE(r.output.find(std::to_string(correct) + " of 5 answers correct (greedy)"),
            std::string::npos)
      << r.output;
}

TEST(CliGenerate, BadInputExitsTwoNamingTheProblem) {
  const struct {
    std::string args;
    std::string message;
  } cases[] = {
      {"--prompt-tokens 1,2", "exactly one of --checkpoint"},
      {"--checkpoint /nonexistent/ckpt --prompt-tokens 1", "/nonexistent/ckpt"},
      {"--checkpoint CKPT", "exactly one of --prompt"},
      {"--checkpoint CKPT --prompt a --prompt-tokens 1", "exactly one of --prompt"},
      {"--checkpoint CKPT --prompt-tokens 1,256", "token ids in [0, 256)"},
      {"--checkpoint CKPT --prompt-tokens 1,x", "'x' for --prompt-tokens"},
      {"--checkpoint CKPT --prompt-tokens 1 --top-p 1.5", "--top-p"},
      {"--checkpoint CKPT --prompt-tokens 1 --temperature -1", "--temperature"},
      {"--checkpoint CKPT --prompt-tokens 1 --top-k 999", "at most the vocabulary (256)"},
      {"--checkpoint CKPT --prompt-tokens 1 --max-new-tokens 0", "--max-new-tokens"},
      {"--checkpoint CKPT --prompt-tokens 1 --stop-token 300", "--stop-token"},
      {"--checkpoint CKPT --prompt-tokens 1 --queries 3", "--queries applies to --task-sample"},
      {"--checkpoint CKPT --prompt ''", "--prompt is empty"},
      {"--checkpoint CKPT --prompt-tokens", "needs a value"},
      {"--checkpoint CKPT --prompt-tokens 1 --bogus 1", "unknown option '--bogus'"},
      {"--hf /nonexistent/hf --task-sample 0", "--task-sample needs --checkpoint"},
  };
  for (const auto& c : cases) {
    std::string args = c.args;
    if (const auto at = args.find("CKPT"); at != std::string::npos)
      args.replace(at, 4, checkpoint_root().string());
    const CliResult r = run_longtrain("generate " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace lt
