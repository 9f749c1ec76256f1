// The tiny training job the multi-rank tests share (tests/mpi/test_parallel_training on MPI,
// tests/gpu_mpi/test_nccl_training on NCCL): its token file and config, one run's losses and
// parameters, and the comparisons against the single-process run or another run of one layout.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "trainer/trainer.h"

namespace lt::test::parallel_training {

// Token file with documents: lengths vary so windows cut through document boundaries.
inline std::string write_token_file(int rank) {
  const auto path =
      std::filesystem::path(testing::TempDir()) /
      ("lt_parallel_tokens_" + std::to_string(::getpid()) + "_" + std::to_string(rank) + ".bin");
  std::ofstream out(path, std::ios::binary);
  std::uint32_t state = 12345;
  for (int doc = 0; doc < 400; ++doc) {
    const int len = 5 + doc * 7 % 41;
    for (int i = 0; i < len; ++i) {
      state = state * 1664525u + 1013904223u;
      const std::uint16_t token = static_cast<std::uint16_t>(2 + (state >> 16) % 120);
      out.write(reinterpret_cast<const char*>(&token), 2);
    }
    const std::uint16_t eod = 1;
    out.write(reinterpret_cast<const char*>(&eod), 2);
  }
  return path.string();
}

// Adam's eps is 1e-6 rather than 1e-8: a weight whose gradient nearly cancels (1e-9 from terms
// of 1e-4) has its last bits set by the summation order, and m / sqrt(v) turns that into a
// visible difference of a full lr-sized step; eps 1e-6 damps such updates so that the comparison
// below measures the parallel algebra, not Adam's conditioning (seen at 1.5e-5 on single
// gate_proj elements with eps 1e-8).
inline std::string config_text(const std::string& tokens) {
  return R"(
model: {dim: 32, layers: 2, heads: 4, kv_heads: 2, ffn: 64, vocab: 128}
data: {source: tokens, path: ")" +
         tokens + R"(", token_dtype: uint16, eod_token: 1, reset_positions: true, seq_len: 48}
train: {steps: 5, global_batch: 8, micro_batch: 2, seed: 11, eval_every: 0, threads: 1}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup: 2, eps: 1.0e-6}
logging: {dir: "", level: warn}
)";
}

struct RunResult {
  std::vector<double> losses;
  std::vector<double> grad_norms;   // before clipping, per step
  std::vector<double> model_flops;  // of the whole job's step
  // Every parameter this rank holds, as f64, with its spec (a tensor-parallel rank holds a slice
  // of the global tensor: spec.global_index maps it).
  std::vector<std::pair<ParamSpec, std::vector<double>>> params;
};

inline RunResult train(const Config& config, const ProcessInfo& process) {
  Trainer trainer(config, process);
  RunResult r;
  for (const auto& s : trainer.run()) {
    r.losses.push_back(s.loss);
    r.grad_norms.push_back(s.grad_norm);
    r.model_flops.push_back(s.flops.model);
  }
  trainer.gather_all_weights();  // ZeRO stage 3 holds only shards between uses
  for (const auto& g : trainer.model().groups()) {
    for (const auto& p : g.params()) {
      Tensor v = Tensor::empty(Shape{p.value.numel()}, DType::f64, MemCategory::workspace);
      copy(p.value.reshape(Shape{p.value.numel()}), v);
      r.params.emplace_back(p.spec,
                            std::vector<double>(v.data<double>(), v.data<double>() + v.numel()));
    }
  }
  return r;
}

inline const std::vector<double>& serial_values(const RunResult& serial, const std::string& name) {
  for (const auto& [spec, values] : serial.params) {
    if (spec.name == name) return values;
  }
  throw std::runtime_error("no parameter " + name + " in the serial run");
}

inline void expect_close(const RunResult& serial, const RunResult& parallel, double loss_tol,
                         double param_tol) {
  ASSERT_EQ(serial.losses.size(), parallel.losses.size());
  for (std::size_t i = 0; i < serial.losses.size(); ++i) {
    EXPECT_NEAR(parallel.losses[i], serial.losses[i], loss_tol * std::abs(serial.losses[i]))
        << "step " << i;
    // The job's FLOPs are the same whatever the layout (each dp replica counts its sequences).
    EXPECT_DOUBLE_EQ(parallel.model_flops[i], serial.model_flops[i]) << "step " << i;
  }
  ASSERT_EQ(serial.params.size(), parallel.params.size());
  // Per tensor: the relative L2 error ||parallel - serial|| / ||serial|| (over the slice this
  // rank holds) within param_tol, and no single element off by more than 10 x param_tol of the
  // tensor's largest weight.
  for (const auto& [spec, values] : parallel.params) {
    const std::vector<double>& want = serial_values(serial, spec.name);
    double diff2 = 0.0, norm2 = 0.0, max_diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto global = static_cast<std::size_t>(spec.global_index(static_cast<std::int64_t>(i)));
      if (global >= want.size()) {
        EXPECT_EQ(values[i], 0.0) << spec.name << ": vocabulary padding must stay zero";
        continue;
      }
      const double d = want[global] - values[i];
      diff2 += d * d;
      norm2 += want[global] * want[global];
      max_diff = std::max(max_diff, std::abs(d));
      scale = std::max(scale, std::abs(want[global]));
    }
    EXPECT_LE(std::sqrt(diff2), param_tol * std::sqrt(norm2)) << spec.name;
    EXPECT_LE(max_diff, 10 * param_tol * scale) << spec.name;
  }
}

// Two runs of the same layout: losses and every parameter slice element by element.
inline void expect_same_layout_close(const RunResult& want, const RunResult& got, double loss_tol,
                                     double param_tol) {
  ASSERT_EQ(want.losses.size(), got.losses.size());
  for (std::size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_NEAR(got.losses[i], want.losses[i], loss_tol * std::abs(want.losses[i])) << "step " << i;
  }
  ASSERT_EQ(want.params.size(), got.params.size());
  for (std::size_t t = 0; t < want.params.size(); ++t) {
    const auto& [spec, a] = want.params[t];
    const auto& b = got.params[t].second;
    ASSERT_EQ(a.size(), b.size()) << spec.name;
    double diff2 = 0.0, norm2 = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      diff2 += (a[i] - b[i]) * (a[i] - b[i]);
      norm2 += a[i] * a[i];
    }
    EXPECT_LE(std::sqrt(diff2), param_tol * std::sqrt(norm2)) << spec.name;
  }
}

// The layout flags of the multi-rank training tests: --dp=N --cp=M --tp=K [--no-sp] (others are
// left alone).
inline void parse_layout_flags(int n, char** args, int& dp, int& cp, int& tp, bool& sp) {
  for (int i = 1; i < n; ++i) {
    const std::string arg = args[i];
    if (arg.rfind("--dp=", 0) == 0) dp = std::stoi(arg.substr(5));
    if (arg.rfind("--cp=", 0) == 0) cp = std::stoi(arg.substr(5));
    if (arg.rfind("--tp=", 0) == 0) tp = std::stoi(arg.substr(5));
    if (arg == "--no-sp") sp = false;
  }
}

}  // namespace lt::test::parallel_training
