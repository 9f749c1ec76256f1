#include "trainer/step_memory_walk.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "core/ops.h"
#include "layers/lm_head_loss.h"
#include "layers/model_config.h"
#include "layers/recompute.h"
#include "parallel/mpi_communicator.h"

namespace lt {
namespace {

using Bytes = std::int64_t;
constexpr MemCategory kWeights = MemCategory::weights;
constexpr MemCategory kGrads = MemCategory::grads;
constexpr MemCategory kOptimizer = MemCategory::optimizer;
constexpr MemCategory kActs = MemCategory::activations;
constexpr MemCategory kWork = MemCategory::workspace;
constexpr MemCategory kComm = MemCategory::communication;
constexpr Bytes kF32 = 4, kF64 = 8;
constexpr Bytes kTile = 64;  // the CPU attention kernel's query and key tile

// Sizes of one rank's share of a micro-batch and of the model, in elements unless noted.
struct Dims {
  Bytes e = 4;               // bytes per compute element
  Bytes t = 0, r = 0;        // tokens on this rank; residual-stream tokens (t / tp under SP)
  Bytes batch = 0, len = 0;  // sequences of a micro-batch; tokens of each on this rank
  Bytes h = 0, q = 0, kv = 0, f = 0, heads = 0, kv_heads = 0, d = 0, vocab = 0;  // local widths
  int tp = 1, cp = 1, replicas = 1, kv_group = 1;
  bool sp = false;
  Bytes threads = 1;
  bool cuda = false;
  bool widen = false;  // bf16 GEMMs through fp32 copies of both operands (CPU BLAS without bf16)

  bool tp_active() const { return tp > 1; }
};

Dims dims_of(const Config& c) {
  Dims d;
  const ModelConfig local =
      local_model_config(c.model, TensorParallelShard{static_cast<int>(c.parallel.tp), 0});
  d.e = c.precision == "bf16" ? 2 : 4;
  d.tp = static_cast<int>(c.parallel.tp);
  d.cp = static_cast<int>(c.parallel.cp);
  d.replicas = static_cast<int>(c.parallel.dp * c.parallel.cp);
  d.kv_group = c.model.kv_heads < d.tp ? d.tp / static_cast<int>(c.model.kv_heads) : 1;
  d.sp = d.tp > 1 && c.parallel.sequence_parallel;
  d.batch = c.train.micro_batch;
  d.len = c.data.seq_len / d.cp;
  d.t = d.batch * d.len;
  d.r = d.sp ? d.t / d.tp : d.t;
  d.h = local.dim;
  d.q = local.q_size();
  d.kv = local.kv_size();
  d.f = local.ffn;
  d.heads = local.heads;
  d.kv_heads = local.kv_heads;
  d.d = local.resolved_head_dim();
  d.vocab = local.vocab;
  d.threads = c.train.threads > 0 ? c.train.threads : 1;
  d.cuda = c.train.device == "cuda";
  d.widen = d.e == 2 && !d.cuda && !cpu_bf16_gemm_is_native();
  return d;
}

// The model's flat parameter groups on this rank (embedding, blocks, head) under ZeRO.
struct Groups {
  std::vector<Bytes> padded;  // elements of each group's buffer
  std::vector<Bytes> shard;   // this rank's shard of it (the whole buffer when not sharded)
  bool sharded = false;       // ZeRO stage >= 1 over more than one replica
  int stage = 0;
  bool tied = false;

  std::size_t head() const { return padded.size() - 1; }
};

Groups groups_of(const Config& c) {
  const ModelConfig local =
      local_model_config(c.model, TensorParallelShard{static_cast<int>(c.parallel.tp), 0});
  Groups g;
  const Bytes replicas = c.parallel.dp * c.parallel.cp;
  g.stage = static_cast<int>(c.parallel.zero_stage);
  g.sharded = g.stage >= 1 && replicas > 1;
  g.tied = c.model.tie_embeddings;
  std::vector<Bytes> sizes{local.vocab * local.dim};
  for (std::int64_t i = 0; i < c.model.layers; ++i) sizes.push_back(count_block_parameters(local));
  sizes.push_back(local.dim + (g.tied ? 0 : local.vocab * local.dim));
  for (Bytes n : sizes) {
    const Bytes padded = g.sharded ? (n + replicas - 1) / replicas * replicas : n;
    g.padded.push_back(padded);
    g.shard.push_back(g.sharded ? padded / replicas : padded);
  }
  return g;
}

class StepWalk {
 public:
  StepWalk(const Config& c, MemoryTimeline& timeline)
      : c_(c), d_(dims_of(c)), g_(groups_of(c)), tl_(timeline) {
    policies_ = recompute_from_names(c.train.recompute.values);
    if (policies_.size() <= 1) {
      policies_.assign(static_cast<std::size_t>(c.model.layers),
                       policies_.empty() ? Recompute::none : policies_.front());
    }
    gathered_.assign(g_.padded.size(), false);
    grads_allocated_.assign(g_.padded.size(), false);
  }

  void run() {
    persistent_state();
    forward();
    backward();
    reduce_gradients();
  }

 private:
  // ---- model state ----

  bool shards_weights() const { return g_.sharded && g_.stage >= 3; }
  bool shards_grads() const { return g_.sharded && g_.stage >= 2; }

  void persistent_state() {
    const Bytes master = c_.precision == "bf16" ? 3 : 2;  // (fp32 master,) m, v
    for (std::size_t i = 0; i < g_.padded.size(); ++i) {
      tl_.allocate(kWeights, d_.e * (shards_weights() ? g_.shard[i] : g_.padded[i]));
      tl_.allocate(kGrads, kF32 * (shards_grads() ? g_.shard[i] : g_.padded[i]));
      tl_.allocate(kOptimizer, master * kF32 * g_.shard[i]);
    }
    // RoPE cos and sin tables for every position of a sequence, on every rank.
    tl_.allocate(kWork, 2 * c_.data.seq_len * (d_.d / 2) * kF32);
  }

  // ZeRO stage 3: a group's full weights exist from its first use to its `done`; the next group's
  // gather starts with the current one's use.
  void weights_needed(std::size_t group, std::optional<std::size_t> next) {
    if (!shards_weights()) return;
    gather(group);
    if (next) gather(*next);
  }
  void gather(std::size_t group) {
    if (gathered_[group]) return;
    gathered_[group] = true;
    tl_.allocate(kWeights, d_.e * g_.padded[group]);
  }
  void weights_done(std::size_t group) {
    if (!shards_weights() || !gathered_[group]) return;
    gathered_[group] = false;
    tl_.release(kWeights, d_.e * g_.padded[group]);
  }

  // ZeRO stage 2: a group's full gradient buffer exists while its backward runs.
  void grads_needed(std::size_t group) {
    if (!shards_grads() || grads_allocated_[group]) return;
    grads_allocated_[group] = true;
    tl_.allocate(kGrads, kF32 * g_.padded[group]);
  }
  void grads_ready(std::size_t group) {
    if (!shards_grads()) return;
    reduce_tp_partials(group);
    tl_.allocate(kComm, kF32 * g_.shard[group]);  // the reduce-scatter's landing buffer
    reduce_scatter(g_.shard[group], kF32, d_.replicas);
    tl_.release(kComm, kF32 * g_.shard[group]);
    grads_allocated_[group] = false;
    tl_.release(kGrads, kF32 * g_.padded[group]);
  }

  // Replicated KV heads and (under SP) the replicated norm weights hold partial gradients.
  void reduce_tp_partials(std::size_t group) {
    if (group == 0 || group == g_.head()) {
      if (d_.sp && group == g_.head()) all_reduce(d_.h, kF32, d_.tp);
      return;
    }
    if (d_.kv_group > 1) {
      for (int i = 0; i < 2; ++i) all_reduce(d_.kv * d_.h, kF32, d_.kv_group);
    }
    if (d_.sp) {
      for (int i = 0; i < 2; ++i) all_reduce(d_.h, kF32, d_.tp);
    }
  }

  void reduce_gradients() {
    if (shards_grads()) return;  // reduce-scattered during backward
    for (std::size_t g = 0; g < g_.padded.size(); ++g) reduce_tp_partials(g);
    for (Bytes padded : g_.padded) all_reduce(padded, kF32, d_.replicas);
  }

  // ---- collectives: the MPI communicator's reduction scratch (two slices of the chunk, at most
  // max_message_bytes each); gathers and point-to-point messages need none ----

  void all_reduce(Bytes numel, Bytes accumulate_bytes, int ranks) {
    reduction_scratch((numel + ranks - 1) / ranks, accumulate_bytes, ranks);
  }
  void reduce_scatter(Bytes chunk, Bytes accumulate_bytes, int ranks) {
    reduction_scratch(chunk, accumulate_bytes, ranks);
  }
  void reduction_scratch(Bytes chunk, Bytes accumulate_bytes, int ranks) {
    if (ranks <= 1 || chunk == 0 || d_.cuda) return;
    const Bytes per_message = static_cast<Bytes>(kDefaultMaxMessageBytes) / accumulate_bytes;
    tl_.transient(kComm, 2 * std::min(chunk, per_message) * accumulate_bytes);
  }

  // ---- GEMMs: C[m, n] = A[m, k] B[k, n]; sizes are element counts ----

  void gemm(Bytes a, Bytes b, Bytes c, bool compute_output) {
    if (d_.widen) {
      tl_.allocate(kWork, kF32 * (a + b + (compute_output ? c : 0)));
      tl_.release(kWork, kF32 * (a + b + (compute_output ? c : 0)));
    } else if (d_.e == 2 && !d_.cuda && compute_output) {
      tl_.transient(kWork, kF32 * c);  // fp32 accumulation, rounded once
    }
  }

  // ---- blocks ----

  // What a block holds between its forward and its backward, bytes per tensor (0: not held).
  struct Saved {
    Bytes xn1 = 0, rstd1 = 0, h = 0, qkv = 0, out = 0, lse = 0, xn2 = 0, rstd2 = 0, gate_up = 0,
          act = 0;
  };

  Bytes rows_bytes(Bytes rows, Bytes width) const { return rows * width * d_.e; }

  // RMSNorm of the residual stream; under SP its output is gathered to all tokens.
  void normed_input(Bytes& xn, Bytes& rstd) {
    const Bytes shard = rows_bytes(d_.r, d_.h);
    tl_.allocate(d_.sp ? kWork : kActs, shard);
    rstd = kF32 * d_.r;
    tl_.allocate(kActs, rstd);
    xn = rows_bytes(d_.t, d_.h);
    if (d_.sp) {
      tl_.allocate(kActs, xn);
      tl_.release(kWork, shard);
    }
  }

  void free_act(Bytes& bytes) {
    tl_.release(kActs, bytes);
    bytes = 0;
  }

  // out[t, k] times the row-parallel weight [h, k], added into the residual stream.
  void row_parallel(Bytes k) {
    if (!d_.tp_active()) {
      gemm(d_.t * k, d_.h * k, d_.t * d_.h, true);
      return;
    }
    const Bytes partial = kF32 * d_.t * d_.h;
    tl_.allocate(kWork, partial);
    gemm(d_.t * k, d_.h * k, d_.t * d_.h, false);
    sum_over_tp(d_.t * d_.h);
    tl_.release(kWork, partial);
  }

  // A partial [t, h] fp32 product summed over tp: reduce-scattered to this rank's tokens under
  // SP, all-reduced otherwise.
  void sum_over_tp(Bytes numel) {
    if (!d_.sp) {
      all_reduce(numel, kF32, d_.tp);
      return;
    }
    const Bytes mine = kF32 * numel / d_.tp;
    tl_.allocate(kWork, mine);
    reduce_scatter(numel / d_.tp, kF32, d_.tp);
    tl_.release(kWork, mine);
  }

  // dy[t, k] through the column-parallel weight [k, h]: the weight gradient, and d_xn.
  void column_parallel_backward(Bytes k) {
    const Bytes weight_grad_a = d_.t * k, weight_grad_b = d_.t * d_.h, weight = k * d_.h;
    if (!d_.tp_active()) {
      gemm(weight_grad_a, weight_grad_b, weight, false);  // fp32 gradient
      gemm(d_.t * k, weight, d_.t * d_.h, true);
      return;
    }
    const Bytes partial = kF32 * d_.t * d_.h;
    tl_.allocate(kWork, partial);
    gemm(weight_grad_a, weight_grad_b, weight, false);
    gemm(d_.t * k, weight, d_.t * d_.h, false);
    sum_over_tp(d_.t * d_.h);
    tl_.release(kWork, partial);
  }

  // The CPU kernel's scratch per (sequence, head) task, one task per thread at a time.
  void attention_tasks_forward() {
    if (d_.cuda) return;
    const Bytes copies = d_.e == 2 ? 3 * d_.len * d_.d * kF32 : 0;  // Q, K, V widened to fp32
    const Bytes per_task = copies + kTile * (kTile + d_.d + 2) * kF32;
    tl_.transient(kWork, std::min(d_.threads, d_.batch * d_.heads) * per_task);
  }
  void attention_tasks_backward() {
    if (d_.cuda) return;
    const Bytes copies = d_.e == 2 ? 5 * d_.len * d_.d * kF32 : 0;  // K, V; Q, O, dO per head
    const Bytes per_task =
        copies + 2 * d_.len * d_.d * kF32 + (2 * kTile * kTile + kTile * d_.d + d_.len) * kF32;
    tl_.transient(kWork, std::min(d_.threads, d_.batch * d_.kv_heads) * per_task);
  }

  Bytes kv_block() const { return 2 * d_.t * d_.kv; }  // K and V of this rank's tokens

  void attention_core_forward() {
    if (d_.cp == 1) {
      attention_tasks_forward();
      return;
    }
    const Bytes comm = 2 * kv_block() * d_.e;  // two K/V blocks: one in use, one arriving
    const Bytes work = 2 * kF32 * (d_.t * d_.q + d_.heads * d_.t);  // accumulated + partial
    tl_.allocate(kComm, comm);
    tl_.allocate(kWork, work);
    attention_tasks_forward();
    tl_.release(kWork, work);
    tl_.release(kComm, comm);
  }

  void attention_core_backward() {
    if (d_.cp == 1) {
      attention_tasks_backward();
      return;
    }
    // Two K/V blocks, two fp32 dK/dV blocks, one partial dK/dV block; dQ accumulated in fp32.
    const Bytes comm = kv_block() * (2 * d_.e + 2 * kF32 + d_.e);
    const Bytes work = d_.t * d_.q * (kF32 + d_.e);
    tl_.allocate(kComm, comm);
    tl_.allocate(kWork, work);
    attention_tasks_backward();
    tl_.release(kWork, work);
    tl_.release(kComm, comm);
  }

  // DecoderBlock::run_forward. `output`: the block's output (the next block's input) is made.
  void block_forward(Saved& s, Recompute policy, bool output) {
    const bool keep_norms = policy == Recompute::none, keep_any = policy != Recompute::full;
    normed_input(s.xn1, s.rstd1);
    if (!keep_norms) free_act(s.rstd1);
    s.h = rows_bytes(d_.r, d_.h);
    tl_.allocate(kActs, s.h);
    // Attention: qkv, out and lse are kept.
    s.qkv = rows_bytes(d_.t, d_.q + 2 * d_.kv);
    tl_.allocate(kActs, s.qkv);
    gemm(d_.t * d_.h, (d_.q + 2 * d_.kv) * d_.h, d_.t * (d_.q + 2 * d_.kv), true);
    s.out = rows_bytes(d_.t, d_.q);
    tl_.allocate(kActs, s.out);
    s.lse = kF32 * d_.heads * d_.t;
    tl_.allocate(kActs, s.lse);
    attention_core_forward();
    row_parallel(d_.q);
    if (!keep_norms) free_act(s.xn1);
    if (!keep_any) {
      free_act(s.qkv);
      free_act(s.out);
      free_act(s.lse);
    }
    normed_input(s.xn2, s.rstd2);
    if (!keep_norms) free_act(s.rstd2);
    if (output) tl_.allocate(kActs, rows_bytes(d_.r, d_.h));
    if (!keep_any) free_act(s.h);
    // MLP: gate_up and act are kept.
    s.gate_up = rows_bytes(d_.t, 2 * d_.f);
    tl_.allocate(kActs, s.gate_up);
    gemm(d_.t * d_.h, 2 * d_.f * d_.h, 2 * d_.t * d_.f, true);
    s.act = rows_bytes(d_.t, d_.f);
    tl_.allocate(kActs, s.act);
    if (output) row_parallel(d_.f);
    if (!keep_norms) {
      free_act(s.xn2);
      free_act(s.act);
    }
    if (!keep_any) free_act(s.gate_up);
  }

  // The gradient flowing down, gathered to all tokens under SP for the duration of `body`.
  template <class Body>
  void with_all_tokens(Body&& body) {
    const Bytes gathered = d_.sp ? rows_bytes(d_.t, d_.h) : 0;
    tl_.allocate(kWork, gathered);
    body();
    tl_.release(kWork, gathered);
  }

  void mlp_backward() {
    const Bytes d_act = rows_bytes(d_.t, d_.f), d_gate_up = rows_bytes(d_.t, 2 * d_.f);
    tl_.allocate(kWork, d_act);
    gemm(d_.t * d_.h, d_.t * d_.f, d_.h * d_.f, false);  // down_proj gradient
    gemm(d_.t * d_.h, d_.h * d_.f, d_.t * d_.f, true);   // d_act
    tl_.allocate(kWork, d_gate_up);
    tl_.release(kWork, d_act);
    column_parallel_backward(2 * d_.f);
    tl_.release(kWork, d_gate_up);
  }

  void attention_backward() {
    const Bytes d_out = rows_bytes(d_.t, d_.q), dqkv = rows_bytes(d_.t, d_.q + 2 * d_.kv);
    tl_.allocate(kWork, d_out);
    gemm(d_.t * d_.h, d_.t * d_.q, d_.h * d_.q, false);  // o_proj gradient
    gemm(d_.t * d_.h, d_.h * d_.q, d_.t * d_.q, true);   // d_out
    tl_.allocate(kWork, dqkv);
    attention_core_backward();
    column_parallel_backward(d_.q + 2 * d_.kv);
    tl_.release(kWork, dqkv);
    tl_.release(kWork, d_out);
  }

  // DecoderBlock::backward: recompute what the policy dropped, then MLP and attention backward.
  void block_backward(Saved& s, Recompute policy) {
    if (policy == Recompute::full) block_forward(s, Recompute::none, false);
    if (s.xn2 == 0) normed_input(s.xn2, s.rstd2);
    if (s.act == 0) {
      s.act = rows_bytes(d_.t, d_.f);
      tl_.allocate(kActs, s.act);
    }
    const Bytes d_xn = rows_bytes(d_.r, d_.h);
    tl_.allocate(kWork, d_xn);
    with_all_tokens([&] { mlp_backward(); });
    free_act(s.gate_up);
    free_act(s.act);
    free_act(s.xn2);
    free_act(s.h);
    free_act(s.rstd2);
    if (s.xn1 == 0) normed_input(s.xn1, s.rstd1);
    with_all_tokens([&] { attention_backward(); });
    free_act(s.qkv);
    free_act(s.out);
    free_act(s.lse);
    free_act(s.xn1);
    free_act(s.rstd1);
    tl_.release(kWork, d_xn);
  }

  // ---- the model ----

  std::size_t layers() const { return policies_.size(); }

  void forward() {
    weights_needed(0, 1);
    const Bytes embedded = rows_bytes(d_.t, d_.h);
    tl_.allocate(kActs, embedded);
    if (d_.tp_active() && !d_.sp) all_reduce(d_.t * d_.h, kF32, d_.tp);
    if (d_.sp) {
      tl_.allocate(kActs, rows_bytes(d_.r, d_.h));
      reduce_scatter(d_.r * d_.h, kF32, d_.tp);
      tl_.release(kActs, embedded);
    }
    weights_done(0);
    saved_.assign(layers(), Saved{});
    for (std::size_t i = 0; i < layers(); ++i) {
      weights_needed(i + 1, i + 2);
      block_forward(saved_[i], policies_[i], true);
      weights_done(i + 1);
    }
    if (g_.tied) weights_needed(0, g_.head());
    weights_needed(g_.head(), std::nullopt);
    const Bytes normed_shard = rows_bytes(d_.r, d_.h);
    tl_.allocate(kActs, normed_shard);
    tl_.allocate(kActs, kF32 * d_.r);  // the final norm's rstd
    if (d_.sp) {
      tl_.allocate(kActs, rows_bytes(d_.t, d_.h));
      tl_.release(kActs, normed_shard);
    }
  }

  // Chunked LM head and cross-entropy over this rank's vocabulary shard (the first chunk is the
  // largest).
  void head_and_loss() {
    const Bytes n = std::min(d_.t, default_logit_chunk_rows(d_.t, d_.vocab));
    const Bytes logits = kF32 * n * d_.vocab;
    tl_.allocate(kWork, logits);
    gemm(n * d_.h, d_.vocab * d_.h, n * d_.vocab, false);
    if (d_.tp_active()) {  // row max, sum of exponentials, target logit and argmax, in f64
      tl_.allocate(kComm, 3 * n * kF64);
      all_reduce(n, kF64, d_.tp);
      tl_.allocate(kComm, n * kF64);
      all_reduce(n, kF64, d_.tp);
      all_reduce(2 * n, kF64, d_.tp);
      tl_.release(kComm, 4 * n * kF64);
    }
    Bytes dlogits = logits;
    if (d_.e == 2) {
      dlogits = n * d_.vocab * d_.e;
      tl_.allocate(kWork, dlogits);
      tl_.release(kWork, logits);
    }
    if (d_.tp_active()) {
      tl_.allocate(kWork, kF32 * n * d_.h);
      gemm(n * d_.vocab, d_.vocab * d_.h, n * d_.h, false);
      all_reduce(n * d_.h, kF32, d_.tp);
      tl_.release(kWork, kF32 * n * d_.h);
    } else {
      gemm(n * d_.vocab, d_.vocab * d_.h, n * d_.h, true);
    }
    gemm(n * d_.vocab, n * d_.h, d_.vocab * d_.h, false);  // the head's weight gradient
    tl_.release(kWork, dlogits);
  }

  void backward() {
    grads_needed(g_.head());
    if (g_.tied) grads_needed(0);  // the LM head writes the embedding's gradients
    const Bytes d_normed = rows_bytes(d_.t, d_.h);
    tl_.allocate(kWork, d_normed);
    head_and_loss();
    tl_.release(kActs, rows_bytes(d_.t, d_.h));  // the normed final output
    const Bytes dx = rows_bytes(d_.r, d_.h);
    tl_.allocate(kWork, dx);
    tl_.release(kWork, d_normed);
    tl_.release(kActs, rows_bytes(d_.r, d_.h) + kF32 * d_.r);  // final norm input and rstd
    grads_ready(g_.head());
    weights_done(g_.head());
    if (g_.tied) weights_done(0);
    for (std::size_t i = layers(); i-- > 0;) {
      grads_needed(i + 1);
      weights_needed(i + 1, i > 0 ? std::optional<std::size_t>(i) : std::nullopt);
      block_backward(saved_[i], policies_[i]);
      weights_done(i + 1);
      grads_ready(i + 1);
      tl_.release(kActs, rows_bytes(d_.r, d_.h));  // the block's input
    }
    grads_needed(0);
    if (d_.sp) tl_.transient(kWork, rows_bytes(d_.t, d_.h));  // dx gathered for the table
    grads_ready(0);
    tl_.release(kWork, dx);
  }

  const Config& c_;
  Dims d_;
  Groups g_;
  MemoryTimeline& tl_;
  std::vector<Recompute> policies_;
  std::vector<Saved> saved_;
  std::vector<bool> gathered_;
  std::vector<bool> grads_allocated_;
};

}  // namespace

void walk_training_step(const Config& config, MemoryTimeline& timeline) {
  StepWalk(config, timeline).run();
}

}  // namespace lt
