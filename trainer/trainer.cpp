#include "trainer/trainer.h"

#include <sched.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>

#include "core/memory.h"
#include "core/ops.h"
#include "core/storage.h"
#include "optim/grad_clip.h"
#include "parallel/self_communicator.h"
#include "parallel/zigzag.h"
#include "trainer/format.h"
#include "trainer/memory_model.h"
#include "trainer/memory_report.h"
#include "trainer/mfu.h"
#include "trainer/tensorboard.h"
#include "trainer/train_device.h"

namespace lt {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s / 60) % 60);
  return fmt::format("{}m{:02d}s", s / 60, s % 60);
}

std::string format_mib(std::int64_t bytes) {
  return fmt::format("{:.1f}", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

std::shared_ptr<spdlog::logger> make_logger(const Config& config, int rank) {
  std::vector<spdlog::sink_ptr> sinks;
  if (rank == 0) sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  if (!config.logging.dir.empty()) {
    const auto path = std::filesystem::path(config.logging.dir) / fmt::format("rank_{}.log", rank);
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string(), true));
  }
  auto logger = std::make_shared<spdlog::logger>("longtrain", sinks.begin(), sinks.end());
  logger->set_pattern("[%H:%M:%S] %v");
  logger->set_level(spdlog::level::from_str(config.logging.level));
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::string config_dir(const Config& c) {
  if (c.source_file.empty()) return ".";
  const auto parent = std::filesystem::path(c.source_file).parent_path();
  return parent.empty() ? "." : parent.string();
}

// Settings the config schema accepts for later milestones but this build cannot honour.
void check_supported(const Config& c) {
  const std::string origin = c.source_file.empty() ? "config" : c.source_file;
  if (c.parallel.mode == "auto") {
    throw ConfigError(origin +
                      ": parallel.mode 'auto' is resolved by `longtrain train`, which runs the "
                      "planner for the job's ranks; a Trainer needs the resolved layout (mode "
                      "'manual'; see resolve_auto_layout in trainer/auto_layout.h)");
  }
  if (c.parallel.cp > 1 && c.data.seq_len % (2 * c.parallel.cp) != 0) {
    throw ConfigError(origin + ": data.seq_len " + std::to_string(c.data.seq_len) +
                      " must be a multiple of 2 x parallel.cp (" +
                      std::to_string(2 * c.parallel.cp) + ") for zigzag context parallelism");
  }
  const std::int64_t micro_tokens = c.train.micro_batch * c.data.seq_len / c.parallel.cp;
  if (c.parallel.tp > 1 && c.parallel.sequence_parallel && micro_tokens % c.parallel.tp != 0) {
    throw ConfigError(origin + ": sequence parallel splits the " + std::to_string(micro_tokens) +
                      " tokens of a micro-batch (per cp rank) over parallel.tp " +
                      std::to_string(c.parallel.tp) +
                      ", which must divide them (or set parallel.sequence_parallel: false)");
  }
  if (c.parallel.tp > 1 && c.model.kv_heads % c.parallel.tp != 0 &&
      c.parallel.tp % c.model.kv_heads != 0) {
    throw ConfigError(origin + ": parallel.tp " + std::to_string(c.parallel.tp) +
                      " must divide model.kv_heads (" + std::to_string(c.model.kv_heads) +
                      ") or be a multiple of it");
  }
}

}  // namespace

int resolve_threads(std::int64_t configured, int local_ranks) {
  if (configured > 0) return static_cast<int>(configured);
  cpu_set_t set;
  int usable = static_cast<int>(std::thread::hardware_concurrency());
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int allowed = CPU_COUNT(&set);
    // Already pinned to a subset (e.g. by mpirun --bind-to core): use it all.
    if (allowed < usable) return std::max(1, allowed);
    usable = allowed;
  }
  return std::max(1, usable / std::max(1, local_ranks));
}

DType compute_dtype(const std::string& precision) {
  return precision == "bf16" ? DType::bf16 : DType::f32;
}

Trainer::Trainer(Config config, ProcessInfo process)
    : config_(std::move(config)), process_(process) {
  check_supported(config_);
  device_ = resolve_train_device(config_, process_.world_size, process_.local_size);
  set_deterministic_attention(config_.train.deterministic);
  // Parameters, activations and optimizer state go to train.device; host-side buffers name
  // Device::cpu.
  const DeviceScope scope = on_device();
  CommunicatorFactory factory = process_.communicators;
  if (!factory) {
    factory = [](const std::string& name, const std::vector<int>& ranks) {
      return make_self_communicator(name, ranks.front());
    };
  }
  if (config_.logging.comm_timing) {
    comm_clock_ = std::make_shared<CommClock>();
    factory = [inner = std::move(factory), clock = comm_clock_](const std::string& name,
                                                                const std::vector<int>& ranks) {
      return make_timed_communicator(inner(name, ranks), clock);
    };
  }
  const MeshShape shape{static_cast<int>(config_.parallel.dp),
                        static_cast<int>(config_.parallel.cp),
                        static_cast<int>(config_.parallel.tp)};
  if (shape.world() != process_.world_size) {
    throw ConfigError(fmt::format(
        "{}: parallel.dp x parallel.cp x parallel.tp = {} x {} x {} = {} but the job has {} "
        "rank(s)",
        config_.source_file, shape.dp, shape.cp, shape.tp, shape.world(), process_.world_size));
  }
  mesh_ = std::make_unique<Mesh>(shape, process_.rank, process_.world_size, factory);
  std::vector<int> everyone(static_cast<std::size_t>(process_.world_size));
  std::iota(everyone.begin(), everyone.end(), 0);
  world_ = factory("world", everyone);
  if (shape.tp > config_.model.kv_heads) {
    // The tp ranks that share one replicated KV head add up its gradients.
    const std::vector<int>& tp_ranks = mesh_->group(MeshAxis::tp).world_ranks();
    const int replicas = shape.tp / static_cast<int>(config_.model.kv_heads);
    const int first = mesh_->coords().tp / replicas * replicas;
    kv_group_ = factory(
        "tp_kv", std::vector<int>(tp_ranks.begin() + first, tp_ranks.begin() + first + replicas));
  }
  if (!config_.logging.dir.empty()) std::filesystem::create_directories(config_.logging.dir);
  log_ = make_logger(config_, process_.rank);
  if (device_ == Device::cuda && config_.logging.peak_tflops == 0.0) {
    // MFU on a GPU by default: the device's dense peak for the run's precision.
    config_.logging.peak_tflops = device_peak_tflops(config_.precision == "bf16");
    if (config_.logging.peak_tflops > 0.0) {
      log_->info(
          "MFU against this GPU's dense {} peak of {:.0f} TFLOP/s (logging.peak_tflops "
          "overrides)",
          config_.precision, config_.logging.peak_tflops);
    }
  }
  threads_ = resolve_threads(config_.train.threads, process_.local_size);
  set_num_threads(threads_);
  data_ = make_data_source(config_.data, config_.train.seed, config_dir(config_));
  length_warmup_ =
      std::make_unique<LengthWarmup>(config_.data, config_.train.seed, config_dir(config_));
  if (data_->min_vocab() > config_.model.vocab) {
    throw ConfigError(fmt::format("{}: model.vocab is {} but the data ({}) needs at least {}",
                                  config_.source_file, config_.model.vocab, data_->describe(),
                                  data_->min_vocab()));
  }
  const Communicator& replica = mesh_->group(MeshAxis::replica);
  zero_ =
      ZeroSharding{static_cast<int>(config_.parallel.zero_stage), replica.size(), replica.rank()};
  model_ = std::make_unique<Model>(config_.model, compute_dtype(config_.precision),
                                   config_.train.seed, config_.data.seq_len,
                                   TensorParallelShard{mesh_->shape().tp, mesh_->coords().tp},
                                   zero_.sharded() ? zero_.ranks : 1);
  recompute_policies_ = recompute_from_names(config_.train.recompute.values);
  model_->set_recompute(recompute_policies_);
  AdamWConfig opt;
  opt.betas = config_.optim.betas;
  opt.eps = config_.optim.eps;
  opt.weight_decay = config_.optim.weight_decay;
  opt.decay_norms = config_.optim.decay_norms;
  opt.decay_embeddings = config_.optim.decay_embeddings;
  optimizer_ = std::make_unique<AdamW>(*model_, opt, config_.train.seed, zero_);
  if (zero_.sharded() && zero_.stage >= 2) shard_gradients_during_backward();
  if (zero_.sharded() && zero_.stage >= 3) shard_weights();
  schedule_ = LrSchedule{config_.optim.schedule, config_.optim.lr, config_.optim.min_lr,
                         config_.optim.warmup, config_.train.steps};
  if (!config_.model_init_from.empty()) load_initial_weights(config_.model_init_from);
  resume();
  if (process_.rank == 0 && !config_.logging.dir.empty()) {
    metrics_ = std::make_unique<MetricsWriter>(
        (std::filesystem::path(config_.logging.dir) / "metrics.jsonl").string(), steps_done_ > 0);
  }
  tensorboard_ = open_tensorboard(config_, process_.rank, steps_done_);
}

Trainer::~Trainer() = default;

void Trainer::log_startup() {
  const ModelConfig& m = config_.model;
  log_->info(
      "longtrain: {} parameters ({} layers, dim {}, {} heads / {} KV heads, ffn {}, vocab {})",
      group_thousands(count_parameters(m)), m.layers, m.dim, m.heads, m.kv_heads, m.ffn, m.vocab);
  log_->info("data: {}", data_->describe());
  if (length_warmup_->enabled()) {
    log_->info(
        "data: length warmup over the first {} steps: documents of {} tokens, doubling "
        "up to {}",
        config_.data.length_warmup_steps, length_warmup_->document_length(0), config_.data.seq_len);
  }
  log_->info(
      "train: {} steps x {} sequences ({} per micro-batch), precision {}, {} threads, seed {}",
      config_.train.steps, config_.train.global_batch, config_.train.micro_batch, config_.precision,
      threads_, config_.train.seed);
  if (zero_.sharded()) {
    log_->info("zero: stage {} over {} replicas: optimizer state{}{} sharded", zero_.stage,
               zero_.ranks, zero_.stage >= 2 ? ", gradients" : "",
               zero_.stage >= 3 ? ", weights (gathered per layer)" : "");
  }
  if (!config_.checkpoint.dir.empty()) {
    log_->info("checkpoint: to {} every {} steps (and at the end), keeping {}",
               config_.checkpoint.dir,
               config_.checkpoint.every > 0 ? std::to_string(config_.checkpoint.every) : "0",
               config_.checkpoint.keep);
  }
  const MemorySnapshot mem = MemoryTracker::for_device(device_).snapshot();
  log_->info("memory: weights {} MiB, grads {} MiB, optimizer {} MiB",
             format_mib(mem.current_of(MemCategory::weights)),
             format_mib(mem.current_of(MemCategory::grads)),
             format_mib(mem.current_of(MemCategory::optimizer)));
}

StepResult Trainer::train_step(std::int64_t step) {
  const DeviceScope scope = on_device();
  if (comm_clock_)
    comm_clock_->take();  // what ran between steps (evals, checkpoints) is not the step's
  const auto t0 = Clock::now();
  const std::int64_t global = config_.train.global_batch, micro = config_.train.micro_batch;
  // Data-parallel replica d trains on samples [d * per_replica, (d + 1) * per_replica) of the step.
  const std::int64_t per_replica = global / mesh_->shape().dp;
  const auto first =
      static_cast<std::uint64_t>(sample_offset_ + step * global + mesh_->coords().dp * per_replica);
  const DataSource* warmup = length_warmup_->source_for(step);
  const DataSource& source = warmup ? *warmup : *data_;
  std::vector<LocalBatch> batches;
  double counts[1] = {0.0};
  std::vector<std::int64_t> documents;  // lengths, for the FLOP count
  for (std::int64_t i = 0; i < per_replica; i += micro) {
    Batch full = make_batch(source, Split::train, first + static_cast<std::uint64_t>(i), micro);
    append_document_lengths(full, documents);
    batches.push_back(localize(std::move(full)));
    counts[0] += static_cast<double>(batches.back().batch.loss_tokens());
  }
  sum_over(MeshAxis::replica, counts);
  const auto loss_tokens = static_cast<std::int64_t>(counts[0]);
  StepResult r;
  r.lr = schedule_.at(step);
  model_->zero_grads();
  for (const Tensor& shard : grad_shards_) fill(shard, 0.0);
  double loss_sum = 0.0;
  if (loss_tokens > 0) {
    // Every micro-batch's gradient is scaled by the step's total token count, so the result is
    // the mean over the whole global batch however it is split.
    const double scale = 1.0 / static_cast<double>(loss_tokens);
    for (const LocalBatch& b : batches) {
      loss_sum += model_->forward_backward(token_batch(b), scale).loss;
      r.tokens += b.batch.num_tokens();
    }
  }
  reduce_gradients();
  double sums[2] = {loss_sum, static_cast<double>(r.tokens)};
  sum_over(MeshAxis::replica, sums);
  r.tokens = static_cast<std::int64_t>(sums[1]);
  // Every dp replica counted its own sequences (cp and tp ranks share theirs).
  const StepFlops mine = step_flops(config_.model, documents, recompute_policies_);
  double flops[2] = {mine.model, mine.hardware};
  sum_over(MeshAxis::dp, flops);
  r.flops = {flops[0], flops[1]};
  r.loss = loss_tokens > 0 ? sums[0] / static_cast<double>(loss_tokens) : 0.0;
  r.grad_norm = grad_norm();
  if (std::isfinite(r.grad_norm)) {
    optimizer_->step(r.lr, clip_coefficient(r.grad_norm, config_.optim.clip), grad_shards_,
                     value_shards_);
    gather_updated_weights();
  } else {
    // A non-finite gradient would poison every weight through Adam's moments: skip the update.
    r.skipped = true;
    log_->warn("step {}: gradient norm is {}; the update is skipped", step + 1, r.grad_norm);
  }
  r.seconds = seconds_since(t0);
  if (comm_clock_) {
    const CommTimes step_comm = comm_clock_->take();
    r.comm = total_of(step_comm);
    for (const auto& [key, t] : step_comm) comm_run_[key] += t;
  }
  return r;
}

EvalResult Trainer::evaluate() {
  const DeviceScope scope = on_device();
  const std::int64_t n = config_.train.eval_samples, micro = config_.train.micro_batch;
  const std::int64_t dp = mesh_->shape().dp, d = mesh_->coords().dp;
  double sums[3] = {0.0, 0.0, 0.0};  // loss, weighted tokens, correct tokens
  double exact = 0.0;
  // Replica d evaluates samples [n * d / dp, n * (d + 1) / dp).
  const std::int64_t begin = n * d / dp, end = n * (d + 1) / dp;
  for (std::int64_t i = begin; i < end; i += micro) {
    const std::int64_t count = std::min(micro, end - i);
    const LocalBatch local =
        localize(make_batch(*data_, Split::eval, static_cast<std::uint64_t>(i), count));
    const Batch& b = local.batch;
    std::vector<std::int32_t> predictions(b.tokens.size());
    const LossSums s = model_->evaluate(token_batch(local), predictions);
    sums[0] += s.loss;
    sums[1] += static_cast<double>(b.loss_tokens());
    sums[2] += static_cast<double>(s.correct);
    // Wrong answers per sample, summed over the cp ranks that hold its chunks.
    std::vector<double> wrong(static_cast<std::size_t>(count), 0.0);
    for (std::int64_t t = 0; t < b.num_tokens(); ++t) {
      const auto u = static_cast<std::size_t>(t);
      if (b.loss_mask[u] != 0.0f && predictions[u] != b.targets[u])
        wrong[static_cast<std::size_t>(t / b.seq_len)] += 1;
    }
    sum_over(MeshAxis::cp, wrong);
    for (double w : wrong) exact += w == 0.0 ? 1.0 : 0.0;
  }
  sum_over(MeshAxis::replica, sums);
  double exact_sum[1] = {exact};
  sum_over(MeshAxis::dp, exact_sum);
  EvalResult r;
  if (sums[1] > 0) {
    r.loss = sums[0] / sums[1];
    r.accuracy = sums[2] / sums[1];
  }
  r.exact_match = n > 0 ? exact_sum[0] / static_cast<double>(n) : 0.0;
  return r;
}

void Trainer::append_document_lengths(const Batch& b, std::vector<std::int64_t>& lengths) {
  for (std::int64_t row = 0; row < b.batch; ++row) {
    const auto begin = static_cast<std::size_t>(row * b.seq_len);
    std::int64_t run = 1;
    for (std::size_t t = begin + 1; t < begin + static_cast<std::size_t>(b.seq_len); ++t) {
      if (b.doc_ids[t] == b.doc_ids[t - 1]) {
        ++run;
      } else {
        lengths.push_back(run);
        run = 1;
      }
    }
    lengths.push_back(run);
  }
}

void Trainer::log_memory_report() {
  const MemorySnapshot mine = MemoryTracker::for_device(device_).snapshot();
  MemorySnapshot most = mine;
  // Maxima over the whole job: over tp, then cp, then dp covers every rank.
  std::vector<double> peaks(kNumMemCategories + 1);
  for (std::size_t c = 0; c < kNumMemCategories; ++c) peaks[c] = static_cast<double>(mine.peak[c]);
  peaks.back() = static_cast<double>(mine.peak_total);
  for (MeshAxis axis : {MeshAxis::tp, MeshAxis::cp, MeshAxis::dp}) {
    sum_over(axis, peaks, ReduceOp::max);
  }
  for (std::size_t c = 0; c < kNumMemCategories; ++c) {
    most.peak[c] = static_cast<std::int64_t>(peaks[c]);
  }
  most.peak_total = static_cast<std::int64_t>(peaks.back());
  Config as_run = config_;
  as_run.train.threads = num_threads();  // the attention kernel's scratch is per thread
  const std::string table =
      format_memory_report(mine, most, predict_memory(as_run), process_.rank, process_.world_size);
  // The console gets rank 0's table (with the maxima); every rank log gets its own.
  log_->info("{}", table);
}

void Trainer::sum_over(MeshAxis axis, std::span<double> values, ReduceOp op) {
  Communicator& group = mesh_->group(axis);
  if (group.size() == 1) return;
  Tensor t = Tensor::empty(Shape{static_cast<std::int64_t>(values.size())}, DType::f64,
                           MemCategory::communication, Device::cpu);
  std::copy(values.begin(), values.end(), t.data<double>());
  group.all_reduce(t, op);
  std::copy_n(t.data<double>(), values.size(), values.begin());
}

double Trainer::grad_norm() {
  // Tensor-parallel shards add up over tp; replicated parameters (norms) count once.
  double sums[2] = {0.0, 0.0};  // sharded, replicated
  // Under ZeRO stage 2 a rank holds the reduced gradient of its shard only: the squares of the
  // shards add up over the replica group.
  const bool sharded_grads = !grad_shards_.empty();
  for (std::size_t gi = 0; gi < model_->groups().size(); ++gi) {
    const ParameterGroup& g = model_->groups()[gi];
    const FlatRange owned = sharded_grads ? optimizer_->owned(gi) : FlatRange{0, g.padded_numel()};
    for (const auto& p : g.params()) {
      const FlatRange part = overlap(p, owned);
      if (part.size == 0) continue;
      const Shape flat{part.size};
      const Tensor grad = sharded_grads ? grad_shards_[gi].flat_view(part.begin - owned.begin, flat)
                                        : g.grads().flat_view(part.begin, flat);
      // A slice held by several tp ranks is counted once in the sum over tp.
      const double ss = sum_squares(grad) / static_cast<double>(p.spec.tp_replicas);
      sums[p.spec.global_shape.rank() > 0 ? 0 : 1] += ss;
    }
  }
  if (sharded_grads) sum_over(MeshAxis::replica, std::span<double>(sums, 2));

  sum_over(MeshAxis::tp, std::span<double>(sums, 1));
  return std::sqrt(sums[0] + sums[1]);
}

void Trainer::reduce_tp_partials(ParameterGroup& group) {
  // Replicated KV heads: the tp ranks sharing one hold partial gradients of it.
  if (kv_group_) {
    for (auto& p : group.params()) {
      if (p.spec.tp_replicas > 1) kv_group_->all_reduce(p.grad.reshape(Shape{p.grad.numel()}));
    }
  }
  if (mesh_->shape().tp > 1 && config_.parallel.sequence_parallel) {
    // Sequence parallel: each tp rank normed only its token shard, so the replicated norm
    // weights hold partial gradients.
    Communicator& tp = mesh_->group(MeshAxis::tp);
    for (auto& p : group.params()) {
      if (p.spec.global_shape.rank() == 0) tp.all_reduce(p.grad.reshape(Shape{p.grad.numel()}));
    }
  }
}

void Trainer::reduce_gradients() {
  // ZeRO stage 2 reduced every group as soon as its backward finished (gradient hooks).
  if (!grad_shards_.empty()) return;
  for (auto& g : model_->groups()) reduce_tp_partials(g);
  // The loss is normalized by the global token count, so the gradients of the ranks holding the
  // same parameters (dp replicas and the cp ranks of a sequence) add up.
  Communicator& replica = mesh_->group(MeshAxis::replica);
  if (replica.size() == 1) return;
  for (auto& g : model_->groups()) replica.all_reduce(g.grads(), ReduceOp::sum);
}

void Trainer::shard_gradients_during_backward() {
  // Each group's full gradient buffer exists only while its backward runs: then its tp partials
  // are summed, the replica group reduce-scatters it into this rank's shard (accumulated over
  // micro-batches) and it is freed.
  auto& groups = model_->groups();
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    groups[gi].release_grads();
    grad_shards_.push_back(
        Tensor::zeros(Shape{optimizer_->owned(gi).size}, model_->grad_dtype(), MemCategory::grads));
  }
  Model::GradientHooks hooks;
  hooks.needed = [this](std::size_t gi) { model_->groups()[gi].allocate_grads(); };
  hooks.ready = [this](std::size_t gi) {
    ParameterGroup& group = model_->groups()[gi];
    reduce_tp_partials(group);
    Tensor part =
        Tensor::empty(grad_shards_[gi].shape(), model_->grad_dtype(), MemCategory::communication);
    mesh_->group(MeshAxis::replica).reduce_scatter(group.grads(), part);
    add(grad_shards_[gi], part);
    group.release_grads();
  };
  model_->set_gradient_hooks(std::move(hooks));
}

void Trainer::shard_weights() {
  // Stage 3: between uses a group's compute weights exist only as this rank's shard. Its full
  // buffer is gathered before each use (forward, backward, evaluate) and freed after; the gather
  // of the group the model will need next starts as soon as the current one is in place, so it
  // overlaps the current layer's compute: at most two groups are gathered at a time.
  auto& groups = model_->groups();
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const FlatRange owned = optimizer_->owned(gi);
    Tensor shard =
        Tensor::empty(Shape{owned.size}, groups[gi].values().dtype(), MemCategory::weights);
    copy(groups[gi].values().flat_view(owned.begin, Shape{owned.size}), shard);
    value_shards_.push_back(std::move(shard));
    groups[gi].release_values();
  }
  prefetch_.resize(groups.size());
  Model::WeightHooks hooks;
  hooks.needed = [this](std::size_t gi, std::size_t next) {
    gather_weights(gi);
    if (next != Model::kNoGroup && !model_->groups()[next].has_values() && !prefetch_[next]) {
      ParameterGroup& upcoming = model_->groups()[next];
      upcoming.allocate_values();
      prefetch_[next] =
          mesh_->group(MeshAxis::replica).iall_gather(value_shards_[next], upcoming.values());
    }
  };
  hooks.done = [this](std::size_t gi) {
    if (!prefetch_[gi]) model_->groups()[gi].release_values();
  };
  model_->set_weight_hooks(std::move(hooks));
}

void Trainer::gather_weights(std::size_t group) {
  ParameterGroup& g = model_->groups()[group];
  if (prefetch_[group]) {
    prefetch_[group]->wait();
    prefetch_[group].reset();
    return;
  }
  if (g.has_values()) return;
  g.allocate_values();
  mesh_->group(MeshAxis::replica).all_gather(value_shards_[group], g.values());
}

void Trainer::gather_all_weights() {
  const DeviceScope scope = on_device();
  for (std::size_t gi = 0; gi < value_shards_.size(); ++gi) gather_weights(gi);
}

void Trainer::gather_updated_weights() {
  if (!zero_.sharded() || !value_shards_.empty()) return;
  // Each rank updated its shard of the weights; every rank needs all of them for the next step.
  Communicator& replica = mesh_->group(MeshAxis::replica);
  for (std::size_t gi = 0; gi < model_->groups().size(); ++gi) {
    const Tensor& values = model_->groups()[gi].values();
    const FlatRange owned = optimizer_->owned(gi);
    replica.all_gather(values.flat_view(owned.begin, Shape{owned.size}), values);
  }
}

LocalBatch Trainer::localize(Batch full) const {
  const int cp = mesh_->shape().cp;
  LocalBatch local;
  if (cp == 1) {
    local.batch = std::move(full);
    return local;
  }
  const Zigzag z{cp, full.seq_len};
  const std::int64_t rank = mesh_->coords().cp, n = full.batch;
  Batch& b = local.batch;
  b.batch = n;
  b.seq_len = z.local_len();
  b.tokens = z.slice<std::int32_t>(full.tokens, rank, n);
  b.targets = z.slice<std::int32_t>(full.targets, rank, n);
  b.loss_mask = z.slice<float>(full.loss_mask, rank, n);
  b.positions = z.slice<std::int32_t>(full.positions, rank, n);
  b.doc_ids = z.slice<std::int32_t>(full.doc_ids, rank, n);
  for (std::int64_t r = 0; r < cp; ++r) {
    local.ring.order.push_back(z.global_order(r, n));
    local.ring.doc.push_back(z.slice<std::int32_t>(full.doc_ids, r, n));
  }
  return local;
}

TokenBatch Trainer::token_batch(const LocalBatch& l) const {
  const Batch& b = l.batch;
  TokenBatch t{b.batch, b.seq_len, b.tokens, b.targets, b.loss_mask, b.positions, b.doc_ids};
  if (mesh_->shape().cp > 1) {
    t.cp = &mesh_->group(MeshAxis::cp);
    t.ring = &l.ring;
  }
  if (mesh_->shape().tp > 1) {
    t.tp = &mesh_->group(MeshAxis::tp);
    t.sequence_parallel = config_.parallel.sequence_parallel;
  }
  return t;
}

void Trainer::log_step(std::int64_t step, const StepResult& r, double elapsed) {
  const MemorySnapshot mem = MemoryTracker::for_device(device_).snapshot();
  const std::int64_t done = step + 1, total = config_.train.steps;
  const double eta = elapsed / static_cast<double>(done) * static_cast<double>(total - done);
  const double tokens_per_s = static_cast<double>(r.tokens) / r.seconds;
  const double mfu = model_flops_utilization(r.flops.model, r.seconds, config_.logging.peak_tflops,
                                             process_.world_size);
  if (done % config_.logging.every == 0 || done == total) {
    log_->info(
        "step {:>{}}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s{}{} | {} "
        "elapsed, eta {} | peak MiB: act {} ws {} total {}",
        done, std::to_string(total).size(), total, r.loss, r.lr, r.grad_norm, tokens_per_s,
        mfu > 0 ? fmt::format(", MFU {:.1f}%", 100.0 * mfu) : std::string(),
        comm_clock_ ? fmt::format(" | comm exposed {:.1f} ms, {}/{} async hidden",
                                  r.comm.exposed_s * 1e3, r.comm.hidden_calls, r.comm.async_calls)
                    : std::string(),
        format_duration(elapsed), format_duration(eta),
        format_mib(mem.peak_of(MemCategory::activations)),
        format_mib(mem.peak_of(MemCategory::workspace)), format_mib(mem.peak_total));
  }
  if (tensorboard_) {
    tensorboard_->write(done,
                        step_scalars(r, mem, config_.logging.peak_tflops, process_.world_size));
  }
  if (!metrics_) return;
  JsonLine line;
  line.add("step", done)
      .add("split", std::string("train"))
      .add("loss", r.loss)
      .add("lr", r.lr)
      .add("grad_norm", r.grad_norm)
      .add("tokens_per_s", tokens_per_s)
      .add("model_flops", r.flops.model)
      .add("model_tflops_per_s", r.flops.model / r.seconds / 1e12)
      .add("hardware_tflops_per_s", r.flops.hardware / r.seconds / 1e12);
  if (mfu > 0) line.add("mfu", mfu);
  line.add("step_time_s", r.seconds).add("elapsed_s", elapsed);
  if (comm_clock_) {
    line.add("comm_exposed_s", r.comm.exposed_s)
        .add("comm_window_s", r.comm.window_s)
        .add("comm_calls", r.comm.calls)
        .add("comm_async_calls", r.comm.async_calls)
        .add("comm_hidden_calls", r.comm.hidden_calls)
        .add("comm_bytes", r.comm.bytes);
  }
  for (std::size_t c = 0; c < kNumMemCategories; ++c) {
    line.add("mem_peak_" + std::string(category_name(static_cast<MemCategory>(c))), mem.peak[c]);
  }
  line.add("mem_peak_total", mem.peak_total);
  metrics_->write(line);
}

void Trainer::log_summary(const std::vector<StepResult>& results, double elapsed) {
  double tokens = 0.0, seconds = 0.0, model_flops = 0.0;
  for (const auto& r : results) {
    tokens += static_cast<double>(r.tokens);
    seconds += r.seconds;
    model_flops += r.flops.model;
  }
  const double mfu = model_flops_utilization(model_flops, seconds, config_.logging.peak_tflops,
                                             process_.world_size);
  log_->info(
      "done: {} steps in {} (steps {} to {}), {:.0f} tok/s and {:.3f} model TFLOP/s on "
      "average{}, final loss {:.4f}",
      results.size(), format_duration(elapsed),
      steps_done_ - static_cast<std::int64_t>(results.size()) + 1, steps_done_,
      seconds > 0 ? tokens / seconds : 0.0, seconds > 0 ? model_flops / seconds / 1e12 : 0.0,
      mfu > 0 ? fmt::format(", MFU {:.1f}%", 100.0 * mfu) : std::string(),
      results.empty() ? 0.0 : results.back().loss);
  if (last_eval_) {
    log_->info("summary: last eval (step {}) loss {:.4f}, accuracy {:.1f}%, exact match {:.1f}%",
               last_eval_->first, last_eval_->second.loss, 100.0 * last_eval_->second.accuracy,
               100.0 * last_eval_->second.exact_match);
  }
  if (comm_clock_) log_comm_summary(seconds);
  const MemorySnapshot mem = MemoryTracker::for_device(device_).snapshot();
  log_->info(
      "summary: peak memory of the last step on this rank {} MiB (weights {}, grads {}, "
      "optimizer {}, activations {}, workspace {}, communication {})",
      format_mib(mem.peak_total), format_mib(mem.peak_of(MemCategory::weights)),
      format_mib(mem.peak_of(MemCategory::grads)), format_mib(mem.peak_of(MemCategory::optimizer)),
      format_mib(mem.peak_of(MemCategory::activations)),
      format_mib(mem.peak_of(MemCategory::workspace)),
      format_mib(mem.peak_of(MemCategory::communication)));
}

void Trainer::log_comm_summary(double step_seconds) {
  const CommOpTimes total = total_of(comm_run_);
  log_->info(
      "summary: communication on this rank: {:.1f} ms exposed of {:.1f} ms of steps ({:.1f}%); "
      "{} of {} non-blocking calls complete before their wait (hidden)",
      total.exposed_s * 1e3, step_seconds * 1e3,
      step_seconds > 0 ? 100.0 * total.exposed_s / step_seconds : 0.0, total.hidden_calls,
      total.async_calls);
  log_->info("summary: {:<8} {:<16} {:>7} {:>7} {:>10} {:>12} {:>11}", "group", "operation",
             "calls", "hidden", "MiB", "exposed ms", "window ms");
  for (const auto& [key, t] : comm_run_) {
    log_->info("summary: {:<8} {:<16} {:>7} {:>7} {:>10.1f} {:>12.2f} {:>11.2f}", key.first,
               key.second, t.calls,
               t.async_calls > 0 ? fmt::format("{}/{}", t.hidden_calls, t.async_calls) : "-",
               static_cast<double>(t.bytes) / (1 << 20), t.exposed_s * 1e3, t.window_s * 1e3);
  }
}

void Trainer::log_eval(std::int64_t step, const EvalResult& r) {
  last_eval_ = std::make_pair(step, r);
  log_->info("eval @ step {} | loss {:.4f} | accuracy {:.1f}% | exact match {:.1f}% ({} samples)",
             step, r.loss, 100.0 * r.accuracy, 100.0 * r.exact_match, config_.train.eval_samples);
  if (tensorboard_) tensorboard_->write(step, eval_scalars(r));
  if (!metrics_) return;
  JsonLine line;
  line.add("step", step)
      .add("split", std::string("eval"))
      .add("loss", r.loss)
      .add("accuracy", r.accuracy)
      .add("exact_match", r.exact_match);
  metrics_->write(line);
}

std::vector<StepResult> Trainer::run() {
  const DeviceScope scope = on_device();
  log_startup();
  const bool eval_enabled = config_.train.eval_every > 0 && config_.train.eval_samples > 0;
  if (eval_enabled && steps_done_ == 0) log_eval(0, evaluate());
  install_stop_handlers();
  const bool saving = !config_.checkpoint.dir.empty();
  std::int64_t saved_at = steps_done_ > 0 ? steps_done_ : -1;
  std::vector<StepResult> results;
  const auto t0 = Clock::now();
  for (std::int64_t step = steps_done_; step < config_.train.steps; ++step) {
    MemoryTracker::for_device(device_).reset_peaks();
    const std::int64_t doc_len = length_warmup_->document_length(step);
    if (step > 0 && doc_len != length_warmup_->document_length(step - 1)) {
      log_->info("data: documents of {} tokens from step {}", doc_len, step + 1);
    }
    results.push_back(train_step(step));
    steps_done_ = step + 1;
    log_step(step, results.back(), seconds_since(t0));
    if (results.size() == 1 && config_.logging.memory_report) log_memory_report();
    const std::int64_t done = step + 1;
    if (eval_enabled && (done % config_.train.eval_every == 0 || done == config_.train.steps)) {
      log_eval(done, evaluate());
    }
    after_step_faults();
    const bool stop = stop_requested();
    const bool periodic = config_.checkpoint.every > 0 && done % config_.checkpoint.every == 0;
    if (saving && (periodic || stop || done == config_.train.steps)) {
      save_checkpoint();
      saved_at = done;
    }
    if (stop) break;
  }
  if (saving && saved_at != steps_done_) save_checkpoint();  // e.g. resumed at the last step
  log_summary(results, seconds_since(t0));
  return results;
}

}  // namespace lt
