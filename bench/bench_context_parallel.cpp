// Context-parallel scaling at a fixed sequence length. Run under mpirun with -np 1, 2, 4, ...:
// parallel.cp is the world size, so each rank holds seq_len / cp tokens (its two zigzag chunks)
// and ring attention passes K/V around the cp group. The model is the quickstart's (dim 128,
// 2 layers, 4 heads / 2 KV heads, FFN 352, vocab 256, fp32) on synthetic associative recall with
// one sequence of 4096 tokens per step, one thread per rank. After the warmup steps the memory
// peaks restart; rank 0 prints one row: per-rank peak activation bytes, peak workspace and
// communication bytes (each the max over ranks; "ws+comm" adds the two peaks, an upper bound on
// the peak of their sum, which the tracker does not keep), the peak of all categories together
// and the median step time (per step, the slowest rank's time).
//
// It also prints, without MPI, the causal attention work per rank for cp in {1, 2, 4, 8}: the
// number of visible (query, key) pairs (key index <= query index) each rank's local queries
// see, under zigzag sharding (chunks r and 2cp-1-r) and under contiguous sharding (tokens
// [r S/cp, (r+1) S/cp)). This counts the pairs the causal mask lets through, not the work an
// implementation may spend on masked-out entries of partly visible blocks.
//
// Options: --seq N (4096), --steps N timed (3), --warmup N (1), --threads N (1), --precision
// fp32|bf16, --no-header (row only), --no-balance (skip the work table), --balance-only (the work
// table alone; needs no mpirun).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/memory.h"
#include "parallel/mpi_communicator.h"
#include "parallel/runtime.h"
#include "parallel/zigzag.h"
#include "trainer/trainer.h"

namespace {

struct Args {
  std::int64_t seq = 4096;
  int steps = 3;
  int warmup = 1;
  int threads = 1;
  std::string precision = "fp32";
  bool header = true;
  bool balance = true;
  bool train = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return argv[++i];
    };
    if (k == "--seq")
      a.seq = std::stoll(next());
    else if (k == "--steps")
      a.steps = std::stoi(next());
    else if (k == "--warmup")
      a.warmup = std::stoi(next());
    else if (k == "--threads")
      a.threads = std::stoi(next());
    else if (k == "--precision")
      a.precision = next();
    else if (k == "--no-header")
      a.header = false;
    else if (k == "--no-balance")
      a.balance = false;
    else if (k == "--balance-only")
      a.train = false;
    else
      throw std::runtime_error("unknown option " + k);
  }
  if (a.steps < 1) throw std::runtime_error("--steps must be at least 1");
  if (a.warmup < 0) throw std::runtime_error("--warmup must be >= 0");
  if (a.seq < 16) throw std::runtime_error("--seq must be at least 16");
  return a;
}

std::string bench_config(const Args& a, int cp) {
  return fmt::format(R"(
model: {{dim: 128, layers: 2, heads: 4, kv_heads: 2, ffn: 352, vocab: 256}}
data: {{source: synthetic, task: associative_recall, seq_len: {}, num_pairs: 8, num_queries: 16}}
train: {{steps: {}, global_batch: 1, micro_batch: 1, seed: 0, eval_every: 0, threads: {}}}
optim: {{lr: 1.0e-3, min_lr: 1.0e-3, warmup: 0, schedule: constant}}
parallel: {{dp: 1, cp: {}, tp: 1, timeout_s: 300}}
precision: {}
logging: {{dir: "", level: warn}}
)",
                     a.seq, a.warmup + a.steps, a.threads, cp, a.precision);
}

double mib(double bytes) {
  return bytes / (1024.0 * 1024.0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Visible causal (query, key) pairs per rank: the sum over its local queries at global index g
// of g + 1 keys.
std::vector<double> zigzag_work(std::int64_t seq, std::int64_t cp) {
  const lt::Zigzag z{cp, seq};
  std::vector<double> work(static_cast<std::size_t>(cp), 0.0);
  for (std::int64_t r = 0; r < cp; ++r)
    for (std::int64_t i = 0; i < z.local_len(); ++i)
      work[static_cast<std::size_t>(r)] += static_cast<double>(z.global_index(r, i) + 1);
  return work;
}

std::vector<double> contiguous_work(std::int64_t seq, std::int64_t cp) {
  std::vector<double> work(static_cast<std::size_t>(cp), 0.0);
  for (std::int64_t r = 0; r < cp; ++r)
    for (std::int64_t g = r * seq / cp; g < (r + 1) * seq / cp; ++g)
      work[static_cast<std::size_t>(r)] += static_cast<double>(g + 1);
  return work;
}

void print_balance(std::int64_t seq) {
  fmt::print(
      "\nCausal attention work per rank, S = {} tokens (visible (query, key) pairs; "
      "imbalance = max/mean - 1)\n",
      seq);
  fmt::print("| cp | sharding   | max pairs/rank | min pairs/rank | max/min | imbalance |\n");
  fmt::print("|---:|------------|---------------:|---------------:|--------:|----------:|\n");
  for (std::int64_t cp : {1, 2, 4, 8}) {
    if (seq % (2 * cp) != 0) {
      fmt::print("| {} | (seq not divisible by 2cp = {}) |\n", cp, 2 * cp);
      continue;
    }
    for (int zig = 1; zig >= 0; --zig) {
      const std::vector<double> w = zig ? zigzag_work(seq, cp) : contiguous_work(seq, cp);
      const double mx = *std::max_element(w.begin(), w.end());
      const double mn = *std::min_element(w.begin(), w.end());
      double mean = 0.0;
      for (double x : w) mean += x;
      mean /= static_cast<double>(w.size());
      fmt::print("| {:>2} | {:<10} | {:>14.0f} | {:>14.0f} | {:>7.2f} | {:>8.2f}% |\n", cp,
                 zig ? "zigzag" : "contiguous", mx, mn, mx / mn, 100.0 * (mx / mean - 1.0));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  lt::DistributedRuntime runtime(&argc, &argv);
  const int rank = runtime.rank(), world = runtime.world_size();
  try {
    const Args args = parse(argc, argv);
    if (args.train) {
      // The world group first, on every rank, before the mesh creates its groups.
      std::unique_ptr<lt::Communicator> world_comm;
      lt::ProcessInfo process{rank, world, runtime.local_size(), {}};
      if (world > 1) {
        world_comm = lt::make_world_communicator(300.0);
        process.communicators = [](const std::string& name, const std::vector<int>& ranks) {
          return lt::make_mpi_communicator(name, ranks, 300.0);
        };
      }
      std::vector<double> times;
      double peaks[4] = {0, 0, 0, 0};  // activations, workspace, communication, total
      {
        lt::Trainer trainer(lt::parse_config(bench_config(args, world), "bench_context_parallel"),
                            process);
        auto& tracker = lt::MemoryTracker::for_device(lt::Device::cpu);
        for (int s = 0; s < args.warmup + args.steps; ++s) {
          if (s == args.warmup) tracker.reset_peaks();
          const lt::StepResult r = trainer.train_step(s);
          if (s >= args.warmup) times.push_back(r.seconds);
        }
        const lt::MemorySnapshot m = tracker.snapshot();
        peaks[0] = static_cast<double>(m.peak_of(lt::MemCategory::activations));
        peaks[1] = static_cast<double>(m.peak_of(lt::MemCategory::workspace));
        peaks[2] = static_cast<double>(m.peak_of(lt::MemCategory::communication));
        peaks[3] = static_cast<double>(m.peak_total);
      }
      if (world_comm) {
        // Max over ranks: the memory peaks, and each step's time (the slowest rank's).
        std::vector<double> all(peaks, peaks + 4);
        all.insert(all.end(), times.begin(), times.end());
        lt::Tensor t = lt::Tensor::empty(lt::Shape{static_cast<std::int64_t>(all.size())},
                                         lt::DType::f64, lt::MemCategory::workspace);
        std::copy(all.begin(), all.end(), t.data<double>());
        world_comm->all_reduce(t, lt::ReduceOp::max);
        std::copy(t.data<double>(), t.data<double>() + 4, peaks);
        std::copy(t.data<double>() + 4, t.data<double>() + t.numel(), times.begin());
      }
      if (rank == 0) {
        if (args.header) {
          fmt::print(
              "Context parallel, seq {} x batch 1, dim 128, 2 layers, 4 heads / 2 KV, ffn 352, {}, "
              "{} thread(s)/rank, {} warmup + {} timed steps; memory = per-rank peak over the "
              "timed steps, max over ranks\n",
              args.seq, args.precision, args.threads, args.warmup, args.steps);
          fmt::print(
              "| cp | tokens/rank | activations MiB | workspace MiB | communication MiB | "
              "ws+comm MiB | total MiB | median step s | tokens/s |\n");
          fmt::print(
              "|---:|------------:|----------------:|--------------:|------------------:|"
              "------------:|----------:|--------------:|---------:|\n");
        }
        const double med = median(times);
        fmt::print(
            "| {:>2} | {:>11} | {:>15.1f} | {:>13.1f} | {:>17.1f} | {:>11.1f} | {:>9.1f} | "
            "{:>13.3f} | {:>8.0f} |\n",
            world, args.seq / world, mib(peaks[0]), mib(peaks[1]), mib(peaks[2]),
            mib(peaks[1] + peaks[2]), mib(peaks[3]), med, static_cast<double>(args.seq) / med);
        std::fflush(stdout);
      }
    }
    if (args.balance && rank == 0) print_balance(args.seq);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "rank {}: error: {}\n", rank, e.what());
    if (world > 1) runtime.abort(1);
    return 1;
  }
}
