// CPU training throughput of longtrain on the benchmark model (dim 256, 4 layers, 8 heads, 4 KV
// heads, FFN 688, vocab 256, seq 512, batch 8, fp32, AdamW) over byte-level text. With
// --dump-batches it first writes the exact token batches it trains on, so that
// bench/pytorch_reference.py can train PyTorch on the same data (see bench/train_vs_pytorch.sh).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/batch_file.h"
#include "trainer/trainer.h"

namespace {

struct Args {
  std::string text = std::string(LT_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";
  std::string dump;
  std::string precision = "fp32";
  int steps = 12;
  int warmup = 2;
  int threads = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return argv[++i];
    };
    if (k == "--text")
      a.text = next();
    else if (k == "--dump-batches")
      a.dump = next();
    else if (k == "--precision")
      a.precision = next();
    else if (k == "--steps")
      a.steps = std::stoi(next());
    else if (k == "--warmup")
      a.warmup = std::stoi(next());
    else if (k == "--threads")
      a.threads = std::stoi(next());
    else
      throw std::runtime_error("unknown option " + k);
  }
  if (a.warmup >= a.steps) throw std::runtime_error("--warmup must be below --steps");
  return a;
}

std::string bench_config(const Args& a) {
  return fmt::format(R"(
model: {{dim: 256, layers: 4, heads: 8, kv_heads: 4, ffn: 688, vocab: 256}}
data: {{source: text, path: "{}", seq_len: 512}}
train: {{steps: {}, global_batch: 8, micro_batch: 8, seed: 0, eval_every: 0, threads: {}}}
optim: {{lr: 3.0e-4, min_lr: 3.0e-4, warmup: 0, weight_decay: 0.1, clip: 1.0, schedule: constant}}
precision: {}
logging: {{dir: "", level: warn}}
)",
                     a.text, a.steps, a.threads, a.precision);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    lt::Trainer trainer(lt::parse_config(bench_config(args), "bench_train_cpu"), lt::ProcessInfo{});
    if (!args.dump.empty()) lt::bench::dump_batches(trainer.data(), args.steps, 8, 256, args.dump);
    fmt::print("longtrain bench: {} parameters, {} threads, precision {}\n",
               trainer.model().parameter_count(), lt::num_threads(), args.precision);
    std::vector<double> times;
    double loss = 0.0;
    for (int s = 0; s < args.steps; ++s) {
      const lt::StepResult r = trainer.train_step(s);
      loss = r.loss;
      fmt::print("step {} loss {:.4f} time_ms {:.1f}{}\n", s, r.loss, r.seconds * 1e3,
                 s < args.warmup ? " (warmup)" : "");
      if (s >= args.warmup) times.push_back(r.seconds);
    }
    std::sort(times.begin(), times.end());
    const double median = times.size() % 2
                              ? times[times.size() / 2]
                              : 0.5 * (times[times.size() / 2 - 1] + times[times.size() / 2]);
    fmt::print("longtrain_tokens_per_s_median {:.1f}\n", 8.0 * 512.0 / median);
    fmt::print("longtrain_final_loss {:.6f}\n", loss);
    fmt::print("longtrain_params {}\n", trainer.model().parameter_count());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
