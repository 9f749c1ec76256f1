// CPU training throughput of longtrain on the benchmark model (dim 256, 4 layers, 8 heads, 4 KV
// heads, FFN 688, vocab 256, seq 512, batch 8, fp32, AdamW) over byte-level text. With
// --dump-batches it first writes the exact token batches it trains on, so that
// bench/pytorch_reference.py can train PyTorch on the same data (see bench/train_vs_pytorch.sh).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

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

// The batch file format of bench/pytorch_reference.py.
void dump_batches(const lt::DataSource& data, int steps, const std::string& path) {
  const std::int64_t batch = 8, seq = data.seq_len(), vocab = 256;
  std::vector<std::int32_t> tokens, targets;
  for (int s = 0; s < steps; ++s) {
    const lt::Batch b =
        lt::make_batch(data, lt::Split::train, static_cast<std::uint64_t>(s * batch), batch);
    tokens.insert(tokens.end(), b.tokens.begin(), b.tokens.end());
    targets.insert(targets.end(), b.targets.begin(), b.targets.end());
  }
  std::ofstream out(path, std::ios::binary);
  out.write("LTBATCH1", 8);
  for (std::int64_t v : {static_cast<std::int64_t>(steps), batch, seq, vocab}) {
    out.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  out.write(reinterpret_cast<const char*>(tokens.data()),
            static_cast<std::streamsize>(tokens.size() * 4));
  out.write(reinterpret_cast<const char*>(targets.data()),
            static_cast<std::streamsize>(targets.size() * 4));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    lt::Trainer trainer(lt::parse_config(bench_config(args), "bench_train_cpu"), lt::ProcessInfo{});
    if (!args.dump.empty()) dump_batches(trainer.data(), args.steps, args.dump);
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
