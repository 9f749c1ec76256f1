// End-to-end GPU training throughput of longtrain: lt::Trainer on train.device cuda, by default
// with the TinyLlama-1.1B shapes (dim 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, vocab
// 32000, RoPE theta 10000, untied head) at seq 8192, batch 1, bf16, AdamW (lr 3e-4 constant,
// weight decay 0.1, clip 1.0) over byte-level text. Per step it prints the loss, the wall time
// (train_step plus a device synchronize), tokens/s and MFU (model FLOPs per second over the GPU's
// dense peak, or --peak-tflops); then medians over the steps after --warmup, the final loss, the
// parameter count and the peak device memory. With --dump-batches it first writes the exact token
// batches it trains on (bench/batch_file.h) for bench/pytorch_reference.py; see
// bench/gpu_train_vs_pytorch.sh. Without a CUDA device it prints "no CUDA device" and exits 0.
//
//   bench_cuda_train [--seq N] [--layers N] [--batch N] [--steps N] [--warmup N]
//                    [--precision fp32|bf16] [--recompute none|selective|full] [--text FILE]
//                    [--dump-batches FILE] [--peak-tflops P]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/batch_file.h"
#include "bench/cuda_timing.h"
#include "core/cuda/runtime.h"
#include "core/memory.h"
#include "core/storage.h"
#include "trainer/trainer.h"

namespace {

constexpr std::int64_t kVocab = 32000;
constexpr const char* kUsage =
    "\nusage: bench_cuda_train [--seq N] [--layers N] [--batch N] [--steps N] [--warmup N]\n"
    "  [--precision fp32|bf16] [--recompute none|selective|full] [--text FILE]\n"
    "  [--dump-batches FILE] [--peak-tflops P]";

struct Args {
  std::string text = std::string(LT_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";
  std::string dump;
  std::string precision = "bf16";
  std::string recompute = "none";
  std::int64_t seq = 8192;
  std::int64_t layers = 22;
  std::int64_t batch = 1;
  int steps = 10;
  int warmup = 3;
  double peak_tflops = 0.0;
};

// An integer in [min, 2^30].
std::int64_t integer(const std::string& flag, const std::string& text, std::int64_t min) {
  constexpr std::int64_t max = std::int64_t{1} << 30;
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v >= min && v <= max) return v;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(
      fmt::format("{}: '{}' is not an integer in [{}, {}]", flag, text, min, max));
}

double non_negative_number(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v >= 0.0) return v;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(flag + ": '" + text + "' is not a non-negative number");
}

std::string one_of(const std::string& flag, const std::string& text,
                   const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), text) != choices.end()) return text;
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
  throw std::runtime_error(flag + ": '" + text + "' is not one of " + list);
}

void parse_flag(Args& a, const std::string& k, const std::string& v) {
  if (k == "--seq") {
    a.seq = integer(k, v, 2);
  } else if (k == "--layers") {
    a.layers = integer(k, v, 1);
  } else if (k == "--batch") {
    a.batch = integer(k, v, 1);
  } else if (k == "--steps") {
    a.steps = static_cast<int>(integer(k, v, 1));
  } else if (k == "--warmup") {
    a.warmup = static_cast<int>(integer(k, v, 0));
  } else if (k == "--precision") {
    a.precision = one_of(k, v, {"fp32", "bf16"});
  } else if (k == "--recompute") {
    a.recompute = one_of(k, v, {"none", "selective", "full"});
  } else if (k == "--text") {
    a.text = v;
  } else if (k == "--dump-batches") {
    a.dump = v;
  } else if (k == "--peak-tflops") {
    a.peak_tflops = non_negative_number(k, v);
  } else {
    throw std::runtime_error("unknown option " + k);
  }
}

Args parse(int argc, char** argv) {
  const std::vector<std::string> flags = {
      "--seq",       "--layers",    "--batch", "--steps",        "--warmup",
      "--precision", "--recompute", "--text",  "--dump-batches", "--peak-tflops"};
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (std::find(flags.begin(), flags.end(), k) == flags.end()) {
      throw std::runtime_error("unknown option " + k + kUsage);
    }
    if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
    parse_flag(a, k, argv[++i]);
  }
  if (a.warmup >= a.steps) throw std::runtime_error("--warmup must be below --steps");
  return a;
}

std::string bench_config(const Args& a) {
  return fmt::format(R"(
model: {{dim: 2048, layers: {}, heads: 32, kv_heads: 4, ffn: 5632, vocab: {}, rope_theta: 10000,
        tie_embeddings: false}}
data: {{source: text, path: "{}", seq_len: {}}}
train: {{steps: {}, global_batch: {}, micro_batch: {}, seed: 0, eval_every: 0, device: cuda,
        recompute: {}}}
optim: {{lr: 3.0e-4, min_lr: 3.0e-4, warmup: 0, weight_decay: 0.1, clip: 1.0, schedule: constant}}
precision: {}
logging: {{dir: "", level: warn, peak_tflops: {}}}
)",
                     a.layers, kVocab, a.text, a.seq, a.steps, a.batch, a.batch, a.recompute,
                     a.precision, a.peak_tflops);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct StepFigures {
  double tokens_per_s = 0.0;
  double mfu = 0.0;
};

// Trains args.steps steps; returns the figures of the timed ones (after the warmup) and the
// last loss.
std::vector<StepFigures> train(lt::Trainer& trainer, const Args& args, double peak_tflops,
                               double& last_loss) {
  using Clock = std::chrono::steady_clock;
  std::vector<StepFigures> timed;
  for (int s = 0; s < args.steps; ++s) {
    const auto t0 = Clock::now();
    const lt::StepResult r = trainer.train_step(s);
    lt::cuda::synchronize();  // the optimizer's kernels may still be in flight
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const StepFigures f{static_cast<double>(r.tokens) / seconds,
                        peak_tflops > 0 ? r.flops.model / seconds / (peak_tflops * 1e12) : 0.0};
    last_loss = r.loss;
    fmt::print("step {} loss {:.4f} time_ms {:.1f} tokens_per_s {:.1f} mfu {:.4f}{}\n", s, r.loss,
               seconds * 1e3, f.tokens_per_s, f.mfu, s < args.warmup ? " (warmup)" : "");
    std::fflush(stdout);
    if (s >= args.warmup) timed.push_back(f);
  }
  return timed;
}

void print_memory() {
  const lt::MemorySnapshot snap = lt::MemoryTracker::for_device(lt::Device::cuda).snapshot();
  for (std::size_t c = 0; c < lt::kNumMemCategories; ++c) {
    fmt::print("longtrain_peak_{}_bytes {}\n", lt::category_name(static_cast<lt::MemCategory>(c)),
               snap.peak[c]);
  }
  fmt::print("longtrain_peak_memory_bytes {}\n", snap.peak_total);
  fmt::print("longtrain_reserved_bytes {}\n", lt::device_reserved_bytes());
  const lt::DeviceMemoryInfo info = lt::device_memory_info();
  fmt::print("device_memory_used_bytes {}\ndevice_memory_total_bytes {}\n",
             info.total_bytes - info.free_bytes, info.total_bytes);
}

void run(const Args& args) {
  lt::Trainer trainer(lt::parse_config(bench_config(args), "bench_cuda_train"), lt::ProcessInfo{});
  if (!args.dump.empty()) {
    lt::bench::dump_batches(trainer.data(), args.steps, args.batch, kVocab, args.dump);
  }
  const double peak =
      args.peak_tflops > 0 ? args.peak_tflops : lt::device_peak_tflops(args.precision == "bf16");
  fmt::print(
      "longtrain bench: {} parameters, {} layers, seq {}, batch {}, precision {}, recompute {}, "
      "peak {:.1f} TFLOP/s\n",
      trainer.model().parameter_count(), args.layers, args.seq, args.batch, args.precision,
      args.recompute, peak);
  double loss = 0.0;
  const std::vector<StepFigures> timed = train(trainer, args, peak, loss);
  std::vector<double> tps, mfu;
  for (const StepFigures& f : timed) {
    tps.push_back(f.tokens_per_s);
    mfu.push_back(f.mfu);
  }
  fmt::print("longtrain_tokens_per_s_median {:.1f}\n", median(tps));
  fmt::print("longtrain_mfu_median {:.4f}\n", median(mfu));
  fmt::print("longtrain_final_loss {:.6f}\n", loss);
  fmt::print("longtrain_params {}\n", trainer.model().parameter_count());
  fmt::print("longtrain_peak_tflops {:.1f}\n", peak);
  print_memory();
}

}  // namespace

int main(int argc, char** argv) {
  return lt::bench::cuda_bench_main("bench_cuda_train", argc, argv, parse, run);
}
