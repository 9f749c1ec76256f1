// The configs in configs/ for real runs: each states the cluster it was planned for in a
// `# plan: FLAGS` header line, followed by what `longtrain plan --config FILE FLAGS` printed
// for it (the chosen layout, the memory table, step time and throughput). These tests run the
// planner with the flags read from the file, so the header cannot drift from the planner, and
// check the published parameter counts of the real models.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli_runner.h"

namespace {

namespace fs = std::filesystem;

const fs::path kConfigs = fs::path(LT_SOURCE_DIR) / "configs";
// Configs that are not planned for a GPU cluster: the quickstart trains on a laptop CPU.
const std::set<std::string> kNotPlanned = {"quickstart.yaml"};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct PlanHeader {
  std::string flags;                // after "# plan:"
  std::vector<std::string> output;  // the "#   " lines under it, without that prefix
};

PlanHeader plan_header(const fs::path& config) {
  std::ifstream in(config);
  std::stringstream text;
  text << in.rdbuf();
  PlanHeader h;
  const auto lines = lines_of(text.str());
  const auto plan = std::find_if(lines.begin(), lines.end(),
                                 [](const auto& l) { return l.starts_with("# plan:"); });
  if (plan == lines.end()) return h;
  h.flags = plan->substr(std::string("# plan:").size());
  for (auto it = plan + 1; it != lines.end() && it->starts_with("#   "); ++it) {
    h.output.push_back(it->substr(4));
  }
  return h;
}

// The planner's lines from "chosen:" through "throughput".
std::vector<std::string> chosen_block(const std::string& output) {
  std::vector<std::string> block;
  bool in_block = false;
  for (const auto& line : lines_of(output)) {
    in_block = in_block || line.starts_with("chosen: ");
    if (!in_block) continue;
    block.push_back(line);
    if (line.starts_with("  throughput ")) break;
  }
  return block;
}

std::string as_header(const std::vector<std::string>& block) {
  std::string s;
  for (const auto& line : block) s += "#   " + line + "\n";
  return s;
}

std::vector<fs::path> configs() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kConfigs)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Configs, EveryHeaderMatchesWhatThePlannerPrintsForItsCluster) {
  int planned = 0;
  for (const fs::path& config : configs()) {
    const std::string name = config.filename().string();
    const PlanHeader h = plan_header(config);
    if (kNotPlanned.contains(name)) continue;
    ASSERT_FALSE(h.flags.empty()) << name << ": no '# plan: --nodes N ...' line in the header";
    const auto r = lt::test::run_longtrain("plan --config " + config.string() + h.flags);
    EXPECT_EQ(r.code, 0) << name << ": " << r.output;
    const auto block = chosen_block(r.output);
    EXPECT_GE(block.size(), 10u) << name << ": " << r.output;
    EXPECT_EQ(h.output, block) << name
                               << ": the header differs from the planner; under '# plan:" << h.flags
                               << "' it should read:\n"
                               << as_header(block);
    ++planned;
  }
  EXPECT_GE(planned, 3);
}

TEST(Configs, RealModelsHaveThePublishedParameterCounts) {
  for (const auto& [file, count] : {std::pair{"tinyllama-1.1b-32k.yaml", "1,100,048,384"},
                                    std::pair{"llama3-8b-128k.yaml", "8,030,261,248"},
                                    std::pair{"llama3-70b-128k.yaml", "70,553,706,496"}}) {
    const auto r = lt::test::run_longtrain("params --config " + (kConfigs / file).string());
    EXPECT_EQ(r.code, 0) << file << ": " << r.output;
    EXPECT_NE(r.output.find("parameters: " + std::string(count)), std::string::npos)
        << file << ": " << r.output;
  }
}

// The header parser itself, on a file written here.
TEST(Configs, HeaderParserReadsTheFlagsAndTheIndentedBlock) {
  const fs::path file = fs::path(testing::TempDir()) / "configs_header.yaml";
  std::ofstream(file) << "# title\n#\n# plan: --nodes 2 --gpu-mem 80GiB\n#   chosen: tp 1\n"
                         "#     total 5\n# trailing prose\nmodel: {dim: 8}\n";
  const PlanHeader h = plan_header(file);
  EXPECT_EQ(h.flags, " --nodes 2 --gpu-mem 80GiB");
  EXPECT_EQ(h.output, (std::vector<std::string>{"chosen: tp 1", "  total 5"}));
  EXPECT_EQ(chosen_block("x\nchosen: a\n  b\n  throughput c\n  after\n"),
            (std::vector<std::string>{"chosen: a", "  b", "  throughput c"}));
}

}  // namespace
