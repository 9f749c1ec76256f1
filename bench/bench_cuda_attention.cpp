// Flash-attention figures: forward, backward and forward+backward TFLOP/s of longtrain's bf16
// attention (the tensor-core flash kernels) for causal and non-causal masks, head dim 128 and 64,
// and several sequence lengths; with --reference, PyTorch's scaled_dot_product_attention timings
// of the same shapes (bench/sdpa_reference.py, run on the same GPU just before) beside them and
// the ratio. Medians of --iters event-timed calls after --warmup untimed ones. Without a device
// it prints "no CUDA device" and exits 0. bench/flash_vs_sdpa.sh runs both.
//
//   bench_cuda_attention [--seqs 4096,8192,16384,32768] [--head-dims 128,64] [--iters N]
//                        [--warmup N] [--tokens N] [--hidden N] [--simple] [--atomic-dq]
//                        [--reference FILE]
//
// Shapes follow FlashAttention's benchmark: batch = max(1, tokens / seq) sequences (16K tokens
// by default), heads = hidden / head_dim (hidden 2048), as many KV heads as heads. FLOPs are the
// algorithmic ones: forward 4 * batch * heads * seq^2 * head_dim (halved when causal), backward
// 2.5x the forward (FA2's convention; our deterministic backward recomputes more than that, which
// the figure therefore does not credit). Each call includes the host staging of the per-token
// masks (a few microseconds). --simple also times the simple CUDA-core kernels up to 8K.
// --atomic-dq times FA2's atomic-dQ backward (train.deterministic: false) instead of the
// deterministic default.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda/model_kernels.h"
#include "core/ops.h"

namespace {

using lt::AttentionShape;
using lt::DType;
using lt::Shape;
using lt::Tensor;

struct Args {
  std::vector<std::int64_t> seqs = {4096, 8192, 16384, 32768};
  std::vector<std::int64_t> head_dims = {128, 64};
  int iters = 10;
  int warmup = 2;
  std::int64_t tokens = 16384;
  std::int64_t hidden = 2048;
  bool simple = false;
  bool atomic_dq = false;
  std::string reference;
};

std::vector<std::int64_t> parse_list(const std::string& text, const std::string& flag) {
  std::vector<std::int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw std::runtime_error(flag + ": '" + item + "' is not a positive integer");
    }
  }
  if (out.empty()) throw std::runtime_error(flag + " needs at least one value");
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + k);
      return argv[++i];
    };
    if (k == "--seqs") {
      a.seqs = parse_list(next(), k);
    } else if (k == "--head-dims") {
      a.head_dims = parse_list(next(), k);
      for (std::int64_t d : a.head_dims)
        if (d != 64 && d != 128)
          throw std::runtime_error("--head-dims: 64 or 128, got " + std::to_string(d));
    } else if (k == "--iters") {
      a.iters = std::stoi(next());
    } else if (k == "--warmup") {
      a.warmup = std::stoi(next());
    } else if (k == "--tokens") {
      a.tokens = std::stoll(next());
    } else if (k == "--hidden") {
      a.hidden = std::stoll(next());
    } else if (k == "--simple") {
      a.simple = true;
    } else if (k == "--atomic-dq") {
      a.atomic_dq = true;
    } else if (k == "--reference") {
      a.reference = next();
    } else {
      throw std::runtime_error("unknown option " + k);
    }
  }
  if (a.iters < 1 || a.warmup < 0) throw std::runtime_error("--iters >= 1 and --warmup >= 0");
  return a;
}

// PyTorch timings by (causal, head_dim, seq): forward, backward, forward+backward ms.
using Key = std::tuple<int, std::int64_t, std::int64_t>;
struct Times {
  double fwd = 0, bwd = 0, both = 0;
};

// Lines "causal head_dim seq fwd_ms bwd_ms fwdbwd_ms" (tab separated; '#' lines are comments).
std::map<Key, Times> read_reference(const std::string& path) {
  std::map<Key, Times> out;
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--reference: cannot read " + path);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream row(line);
    int causal = 0;
    std::int64_t d = 0, s = 0;
    Times t;
    if (!(row >> causal >> d >> s >> t.fwd >> t.bwd >> t.both)) {
      throw std::runtime_error(path + ":" + std::to_string(number) +
                               ": expected 'causal head_dim seq fwd_ms bwd_ms fwdbwd_ms'");
    }
    out[{causal, d, s}] = t;
  }
  return out;
}

struct Case {
  bool causal;
  std::int64_t head_dim, seq, batch, heads;
  double fwd_flops() const {
    const double f = 4.0 * static_cast<double>(batch * heads) * static_cast<double>(seq) *
                     static_cast<double>(seq) * static_cast<double>(head_dim);
    return causal ? f / 2 : f;
  }
};

Times time_case(const Args& args, const Case& c) {
  AttentionShape shape;
  shape.batch = c.batch;
  shape.q_len = shape.kv_len = c.seq;
  shape.heads = shape.kv_heads = c.heads;
  shape.head_dim = c.head_dim;
  shape.causal = c.causal;
  const std::int64_t rows = c.batch * c.seq, width = c.heads * c.head_dim;
  // q, k, v as column blocks of one fused projection, as the attention layer holds them.
  const Tensor qkv = lt::bench::device_random(Shape{rows, 3 * width}, DType::bf16, 0.5);
  const Tensor q = qkv.columns(0, width), k = qkv.columns(width, width),
               v = qkv.columns(2 * width, width);
  const Tensor out = lt::bench::device_random(Shape{rows, width}, DType::bf16);
  const Tensor lse = lt::bench::device_random(Shape{c.batch, c.heads, c.seq}, DType::f32);
  const Tensor dout = lt::bench::device_random(Shape{rows, width}, DType::bf16);
  const Tensor dqkv = lt::bench::device_random(Shape{rows, 3 * width}, DType::bf16);
  const Tensor dq = dqkv.columns(0, width), dk = dqkv.columns(width, width),
               dv = dqkv.columns(2 * width, width);
  if (lt::cuda::flash_attention_enabled() &&
      !lt::cuda::flash_attention_forward_applies(shape, q, k, v, out)) {
    throw std::runtime_error("the flash kernel does not take head_dim " +
                             std::to_string(c.head_dim) + " on this device");
  }
  auto fwd = [&] { lt::cuda::attention_forward(shape, q, k, v, out, lse); };
  auto bwd = [&] { lt::cuda::attention_backward(shape, q, k, v, out, lse, dout, dq, dk, dv); };
  fwd();  // a real output and LSE for the backward
  Times t;
  t.fwd = lt::bench::median_ms(args.warmup, args.iters, fwd);
  t.bwd = lt::bench::median_ms(args.warmup, args.iters, bwd);
  t.both = lt::bench::median_ms(args.warmup, args.iters, [&] {
    fwd();
    bwd();
  });
  return t;
}

double tflops(double flops, double ms) {
  return flops / (ms * 1e9);
}

void print_header(bool with_reference) {
  fmt::print("{:<7} {:>4} {:>6} {:>5} {:>5} | {:>9} {:>9} {:>9}", "mask", "hd", "seq", "batch",
             "heads", "fwd TF/s", "bwd TF/s", "f+b TF/s");
  if (with_reference)
    fmt::print(" | {:>9} {:>9} {:>9} | {:>6} {:>6} {:>6}", "sdpa fwd", "sdpa bwd", "sdpa f+b",
               "fwd x", "bwd x", "f+b x");
  fmt::print("\n");
}

void bench(const Args& args) {
  const std::map<Key, Times> reference = read_reference(args.reference);
  lt::cuda::set_deterministic_attention(!args.atomic_dq);
  fmt::print(
      "flash attention, bf16, {} backward, medians of {} timed calls after {} warm-up calls; "
      "TFLOP/s\n",
      args.atomic_dq ? "atomic-dQ" : "deterministic", args.iters, args.warmup);
  print_header(!reference.empty());
  for (bool causal : {true, false}) {
    for (std::int64_t hd : args.head_dims) {
      for (std::int64_t seq : args.seqs) {
        const Case c{causal, hd, seq, std::max<std::int64_t>(1, args.tokens / seq),
                     args.hidden / hd};
        const Times t = time_case(args, c);
        const double f = c.fwd_flops();
        const double ours[3] = {tflops(f, t.fwd), tflops(2.5 * f, t.bwd), tflops(3.5 * f, t.both)};
        fmt::print("{:<7} {:>4} {:>6} {:>5} {:>5} | {:>9.1f} {:>9.1f} {:>9.1f}",
                   causal ? "causal" : "full", hd, seq, c.batch, c.heads, ours[0], ours[1],
                   ours[2]);
        const auto it = reference.find({causal ? 1 : 0, hd, seq});
        if (it != reference.end()) {
          const Times& r = it->second;
          const double ref[3] = {tflops(f, r.fwd), tflops(2.5 * f, r.bwd), tflops(3.5 * f, r.both)};
          fmt::print(" | {:>9.1f} {:>9.1f} {:>9.1f} | {:>5.2f}x {:>5.2f}x {:>5.2f}x", ref[0],
                     ref[1], ref[2], ours[0] / ref[0], ours[1] / ref[1], ours[2] / ref[2]);
        } else if (!reference.empty()) {
          fmt::print(" | (no reference)");
        }
        fmt::print("\n");
        if (args.simple && seq <= 8192) {
          lt::cuda::set_flash_attention(false);
          const Times s = time_case(args, c);
          lt::cuda::set_flash_attention(true);
          fmt::print(
              "{:<7} {:>4} {:>6} {:>5} {:>5} | {:>9.1f} {:>9.1f} {:>9.1f}  (simple kernel)\n", "",
              "", "", "", "", tflops(f, s.fwd), tflops(2.5 * f, s.bwd), tflops(3.5 * f, s.both));
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  return lt::bench::cuda_bench_main("bench_cuda_attention", argc, argv, parse, bench);
}
