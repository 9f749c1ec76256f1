// Multi-rank GPU training (one rank per GPU; device tensors over NCCL, host ones over MPI, as
// `longtrain train` runs it) against the single-process CPU run, for the layout on the command
// line (--dp=N --cp=M --tp=K, like tests/mpi/test_parallel_training): fp32 and bf16 losses and
// every parameter after 5 steps, and ZeRO stages 1-3 against stage 0 of the same GPU layout.
// Without a GPU per rank every rank reports SKIPPED (tests/gpu_mpi/CMakeLists.txt).
//
// Tolerances: fp32 1e-4 of the loss and of each parameter tensor's norm (cuBLASLt and the CUDA
// kernels sum in other orders than the CPU, and Adam amplifies near-cancelling gradients; the
// single-GPU run against the CPU one, test_cuda_training, holds 1e-4 too); bf16 as the MPI
// parallel test (2e-2 of the loss, 1e-1 of the norm: rounding points differ per rank).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "parallel/job_communicators.h"
#include "parallel/mpi_communicator.h"
#include "parallel/runtime.h"
#include "tests/gpu_mpi/nccl_test_util.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/mpi/parallel_training_util.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

using namespace test::parallel_training;

DistributedRuntime* g_runtime = nullptr;
int g_dp = 0, g_cp = 1, g_tp = 1;
std::string g_skip;  // why this job cannot run the tests; empty when it can

#define LT_REQUIRE_GPU_PER_RANK()                \
  do {                                           \
    if (!g_skip.empty()) GTEST_SKIP() << g_skip; \
  } while (0)

std::vector<std::string> layout(std::vector<std::string> overrides) {
  const int world = g_runtime->world_size();
  overrides.push_back("parallel.dp=" + std::to_string(g_dp > 0 ? g_dp : world / (g_cp * g_tp)));
  overrides.push_back("parallel.cp=" + std::to_string(g_cp));
  overrides.push_back("parallel.tp=" + std::to_string(g_tp));
  return overrides;
}

RunResult gpu_run(const std::string& tokens, std::vector<std::string> overrides) {
  overrides.push_back("train.device=cuda");
  const Config config = parse_config(config_text(tokens), "nccl_training.yaml", layout(overrides));
  const ProcessInfo process{g_runtime->rank(), g_runtime->world_size(), g_runtime->local_size(),
                            make_job_communicators(Device::cuda, 120.0)};
  return train(config, process);
}

class NcclTraining : public ::testing::TestWithParam<std::string> {};

// model.dim 256 with 4 heads: head_dim 64, so bf16 attention runs the flash kernels.
TEST_P(NcclTraining, MatchesTheSingleProcessCpuRun) {
  LT_REQUIRE_GPU_PER_RANK();
  const std::string tokens = write_token_file(g_runtime->rank());
  const std::vector<std::string> overrides = {"precision=" + GetParam(), "model.dim=256",
                                              "model.ffn=512"};
  const RunResult serial =
      train(parse_config(config_text(tokens), "nccl_training.yaml", overrides), ProcessInfo{});
  const RunResult parallel = gpu_run(tokens, overrides);
  if (GetParam() == "fp32") {
    expect_close(serial, parallel, 1e-4, 1e-4);
  } else {
    expect_close(serial, parallel, 2e-2, 1e-1);
  }
  std::filesystem::remove(tokens);
}

// ZeRO over NCCL (reduce-scatter of gradients, all-gather of parameters) against stage 0 of the
// same GPU layout.
TEST_P(NcclTraining, ZeroStagesMatchTheUnshardedGpuRun) {
  LT_REQUIRE_GPU_PER_RANK();
  const std::string tokens = write_token_file(g_runtime->rank());
  const std::string precision = "precision=" + GetParam();
  const RunResult unsharded = gpu_run(tokens, {precision, "parallel.zero_stage=0"});
  for (int stage : {1, 2, 3}) {
    SCOPED_TRACE("zero stage " + std::to_string(stage));
    const RunResult sharded =
        gpu_run(tokens, {precision, "parallel.zero_stage=" + std::to_string(stage)});
    const bool fp32 = GetParam() == "fp32";
    expect_same_layout_close(unsharded, sharded, fp32 ? 1e-6 : 1e-4, fp32 ? 1e-6 : 1e-3);
  }
  std::filesystem::remove(tokens);
}

INSTANTIATE_TEST_SUITE_P(Precision, NcclTraining, ::testing::Values("fp32", "bf16"));

}  // namespace
}  // namespace lt

int main(int argc, char** argv) {
  return lt::run_mpi_tests(argc, argv, lt::g_runtime, [](int n, char** args) {
    bool sequence_parallel = true;  // the default: the flag is not used here
    lt::test::parallel_training::parse_layout_flags(n, args, lt::g_dp, lt::g_cp, lt::g_tp,
                                                    sequence_parallel);
    std::vector<int> everyone(static_cast<std::size_t>(lt::g_runtime->world_size()));
    std::iota(everyone.begin(), everyone.end(), 0);
    const auto world = lt::make_mpi_communicator("skip-check", everyone, 60.0);
    lt::g_skip = lt::test::nccl_skip_reason(*lt::g_runtime, *world);
    if (lt::g_skip.empty()) lt::g_runtime->select_local_gpu();
  });
}
