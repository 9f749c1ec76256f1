#include "trainer/step_time.h"

#include <algorithm>
#include <vector>

#include "layers/flops.h"
#include "layers/lm_head_loss.h"
#include "layers/model_config.h"
#include "layers/recompute.h"

namespace lt {
namespace {

// A link as the alpha-beta model sees it.
struct AlphaBeta {
  double alpha = 0.0;  // seconds per message
  double beta = 1.0;   // bytes per second
};

// A group of `span` consecutive ranks (ranks fill nodes in order; tp varies fastest, then cp,
// then dp) talks over NVLink-class links only when every such group sits inside one node.
AlphaBeta link_of(const ClusterSpec& k, std::int64_t span) {
  const bool inside = span <= k.devices_per_node && k.devices_per_node % span == 0;
  const LinkSpec& l = inside ? k.intra : k.inter;
  return {l.latency_us * 1e-6, l.gb_per_s * 1e9};
}

// A ring reduce-scatter or all-gather of a `bytes` tensor over n ranks: n - 1 steps, each
// moving one n-th of it.
double ring_pass_s(AlphaBeta l, std::int64_t n, double bytes) {
  if (n <= 1) return 0.0;
  return static_cast<double>(n - 1) * (l.alpha + bytes / static_cast<double>(n) / l.beta);
}

// Ring all-reduce: a reduce-scatter, then an all-gather.
double all_reduce_s(AlphaBeta l, std::int64_t n, double bytes) {
  return 2.0 * ring_pass_s(l, n, bytes);
}

// Communication issued layer by layer beside `window` seconds of compute: what exceeds the
// window shows, and so does the last layer's share, which no compute follows.
double exposed_s(double comm, double window, std::int64_t layers) {
  return std::max(0.0, comm - window) + comm / static_cast<double>(layers);
}

// What the communication terms need about the layout and one micro-batch on one rank.
struct StepShape {
  std::int64_t tp = 1, cp = 1, replicas = 1, layers = 1, micro_batches = 1;
  double tokens = 0.0;  // a micro-batch's tokens on this rank, before the sequence-parallel split
  double e = 2.0;       // bytes per compute element
  std::int64_t full_layers = 0, selective_layers = 0;
  double forward_s = 0.0, backward_s = 0.0;  // compute of one micro-batch on one rank
};

// The vocab-parallel LM head under tp: per logits chunk, three all-reduces of per-row
// statistics (latency, mostly) and one of the chunk's partial input gradient (fp32).
double lm_head_s(const Config& c, AlphaBeta l, const StepShape& s) {
  const auto rows = static_cast<std::int64_t>(s.tokens);
  const std::int64_t per_chunk =
      default_logit_chunk_rows(rows, local_model_config(c.model, {s.tp, 0}).vocab);
  const auto chunks = static_cast<double>((rows + per_chunk - 1) / per_chunk);
  const double gradient = s.tokens * static_cast<double>(c.model.dim) * 4.0;
  return chunks * (3.0 * all_reduce_s(l, s.tp, 0.0) + all_reduce_s(l, s.tp, gradient / chunks));
}

// Tensor parallelism, per micro-batch. With sequence parallelism each layer gathers its normed
// input before attention and the MLP (compute dtype) and reduce-scatters the row-parallel
// outputs (fp32 partial sums); backward mirrors the four. A selective block re-gathers its two
// norms, a full block reruns its forward but the down projection. Without sequence parallelism
// the same sums are fp32 all-reduces and the norms are local. The embedding and the final norm
// add an exchange of the activations each, the LM head its per-chunk all-reduces.
double tensor_parallel_s(const Config& c, const ClusterSpec& k, const StepShape& s) {
  if (s.tp == 1) return 0.0;
  const AlphaBeta l = link_of(k, s.tp);
  const double activations = s.tokens * static_cast<double>(c.model.dim);
  const auto layers = static_cast<double>(s.layers), full = static_cast<double>(s.full_layers),
             selective = static_cast<double>(s.selective_layers);
  double blocks = 0.0, ends = 0.0;
  if (c.parallel.sequence_parallel) {
    const double gather = ring_pass_s(l, s.tp, activations * s.e),
                 scatter = ring_pass_s(l, s.tp, activations * 4.0);
    blocks = layers * 4.0 * (gather + scatter) + selective * 2.0 * gather +
             full * (2.0 * gather + scatter);
    ends = 3.0 * gather;  // embedding scatter and its gradient's gather, the final norm's gather
  } else {
    const double sum = all_reduce_s(l, s.tp, activations * 4.0);
    blocks = layers * 4.0 * sum + full * sum;
    ends = all_reduce_s(l, s.tp, activations * s.e);
  }
  return static_cast<double>(s.micro_batches) * (blocks + ends + lm_head_s(c, l, s));
}

// Context parallelism, per micro-batch: every layer passes K/V blocks around the ring (cp - 1
// steps forward; backward adds the fp32 dK/dV travelling with them), each step overlapping one
// cp-th of the layer's attention; only the excess shows. A full block's rerun passes them again.
double context_parallel_s(const Config& c, const ClusterSpec& k, const StepShape& s) {
  if (s.cp == 1) return 0.0;
  const AlphaBeta l = link_of(k, s.tp * s.cp);
  const ModelConfig local = local_model_config(c.model, {s.tp, 0});
  const double kv = 2.0 * s.tokens * static_cast<double>(local.kv_size());  // K and V elements
  const double attention = attention_flops(c.model, c.data.seq_len) *
                           static_cast<double>(c.train.micro_batch) /
                           static_cast<double>(s.cp * s.tp) / (k.sustained_tflops * 1e12);
  const double window = attention / static_cast<double>(s.cp);
  const double steps = static_cast<double>(s.cp - 1);
  const double forward = steps * std::max(0.0, l.alpha + kv * s.e / l.beta - window);
  // Backward attention costs 2.5 forwards: two GEMMs per forward GEMM plus the score recompute.
  const double backward = steps * std::max(0.0, l.alpha + kv * (s.e + 4.0) / l.beta - 2.5 * window);
  const double per_micro = static_cast<double>(s.layers) * (forward + backward) +
                           static_cast<double>(s.full_layers) * forward;
  return static_cast<double>(s.micro_batches) * per_micro;
}

// Data parallelism and ZeRO over the replica group (the dp x cp ranks holding the same
// parameters): fp32 gradients, compute-dtype weights.
//   stage 0, 1: one all-reduce per step, layer by layer beside the last micro-batch's backward;
//   stage 1, 2: the updated weights all-gathered after the optimizer, exposed;
//   stage 2: a reduce-scatter per micro-batch beside its backward;
//   stage 3: per micro-batch, the weights gathered beside forward, and again with the
//            reduce-scatter beside backward.
double data_parallel_s(const Config& c, const ClusterSpec& k, const StepShape& s) {
  if (s.replicas == 1) return 0.0;
  const AlphaBeta l = link_of(k, s.tp * s.replicas);
  const auto parameters =
      static_cast<double>(count_parameters(local_model_config(c.model, {s.tp, 0})));
  const double grads = 4.0 * parameters, weights = s.e * parameters;
  const std::int64_t stage = c.parallel.zero_stage, n = s.replicas, layers = s.layers;
  const auto micro = static_cast<double>(s.micro_batches);
  if (stage <= 1) {
    const double reduce = exposed_s(all_reduce_s(l, n, grads), s.backward_s, layers);
    return reduce + (stage == 1 ? ring_pass_s(l, n, weights) : 0.0);
  }
  if (stage == 2) {
    return micro * exposed_s(ring_pass_s(l, n, grads), s.backward_s, layers) +
           ring_pass_s(l, n, weights);
  }
  const double gather = ring_pass_s(l, n, weights);
  return micro * (exposed_s(gather, s.forward_s, layers) +
                  exposed_s(gather + ring_pass_s(l, n, grads), s.backward_s, layers));
}

StepShape step_shape(const Config& c, const StepTime& t) {
  const ParallelConfig& p = c.parallel;
  StepShape s;
  s.tp = p.tp;
  s.cp = p.cp;
  s.replicas = p.dp * p.cp;
  s.layers = c.model.layers;
  s.micro_batches = c.train.global_batch / (p.dp * c.train.micro_batch);
  s.tokens = static_cast<double>(c.train.micro_batch * c.data.seq_len / p.cp);
  s.e = c.precision == "bf16" ? 2.0 : 4.0;
  for (std::int64_t i = 0; i < c.model.layers; ++i) {
    const std::string& name = c.train.recompute.at(i);
    s.full_layers += name == "full";
    s.selective_layers += name == "selective";
  }
  // Forward is a third of the model FLOPs; backward is the rest of the hardware FLOPs.
  const auto micro = static_cast<double>(s.micro_batches);
  s.forward_s = t.compute_s * (t.model_flops / 3.0) / t.hardware_flops / micro;
  s.backward_s = t.compute_s / micro - s.forward_s;
  return s;
}

}  // namespace

StepTime estimate_step_time(const Config& c, const ClusterSpec& k) {
  const std::vector<std::int64_t> documents(static_cast<std::size_t>(c.train.global_batch),
                                            c.data.seq_len);
  const std::vector<Recompute> policies = recompute_from_names(c.train.recompute.values);
  const StepFlops flops = step_flops(c.model, documents, policies);
  const auto ranks = static_cast<double>(c.parallel.tp * c.parallel.cp * c.parallel.dp);
  StepTime t;
  t.model_flops = flops.model;
  t.hardware_flops = flops.hardware;
  t.compute_s = flops.hardware / (ranks * k.sustained_tflops * 1e12);
  const StepShape s = step_shape(c, t);
  t.tp_s = tensor_parallel_s(c, k, s);
  t.cp_s = context_parallel_s(c, k, s);
  t.dp_s = data_parallel_s(c, k, s);
  return t;
}

double model_flops_utilization(const StepTime& t, const Config& c, const ClusterSpec& k) {
  const auto ranks = static_cast<double>(c.parallel.tp * c.parallel.cp * c.parallel.dp);
  return t.model_flops / (t.total_s() * ranks * k.peak_tflops * 1e12);
}

}  // namespace lt
