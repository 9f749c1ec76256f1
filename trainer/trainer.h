// The training loop: builds the model, optimizer and data from a Config, then steps, logs and
// evaluates.
#pragma once

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/device_scope.h"
#include "layers/flops.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "parallel/comm_timing.h"
#include "parallel/mesh.h"
#include "parallel/ring_attention.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/length_warmup.h"
#include "trainer/metrics.h"
#include "trainer/tensor_slice.h"

namespace spdlog {
class logger;
}

namespace lt {

class TensorBoardWriter;  // trainer/tensorboard.h

struct EvalResult {
  double loss = 0.0;         // mean over loss-weighted tokens
  double accuracy = 0.0;     // fraction of loss-weighted tokens predicted exactly (argmax)
  double exact_match = 0.0;  // fraction of samples whose every weighted token is right
};

struct StepResult {
  double loss = 0.0;
  double grad_norm = 0.0;
  double lr = 0.0;
  std::int64_t tokens = 0;
  double seconds = 0.0;
  bool skipped = false;  // the gradient was not finite and the optimizer did not step
  StepFlops flops;       // of the whole job's step (layers/flops.h)
  CommOpTimes comm;      // this rank's communication during the step (logging.comm_timing)
};

// A micro-batch as this rank holds it, with the ring layout when context parallel.
struct LocalBatch {
  Batch batch;
  RingLayout ring;
};

struct ProcessInfo {
  int rank = 0;
  int world_size = 1;
  int local_size = 1;
  // Makes the mesh's group communicators; empty: single-member groups (a world of one).
  CommunicatorFactory communicators;
};

class Trainer {
 public:
  Trainer(Config config, ProcessInfo process);
  ~Trainer();

  // Trains for train.steps steps, evaluating before the first step, every eval_every steps and
  // after the last. Returns the per-step results.
  std::vector<StepResult> run();

  StepResult train_step(std::int64_t step);
  EvalResult evaluate();
  Model& model() { return *model_; }
  // ZeRO stage 3 keeps only weight shards between uses: gathers every group's full weights into
  // the model (for inspection, tests, export). No-op for other stages.
  void gather_all_weights();
  const Mesh& mesh() const { return *mesh_; }
  // Saves the training state after steps_done() steps as checkpoint step_<steps_done()> under
  // checkpoint.dir: every rank writes its pieces, rank 0 publishes the checkpoint. All ranks
  // call it. run() saves every checkpoint.every steps, at the end and on SIGTERM/SIGUSR1.
  void save_checkpoint();
  // Steps trained so far, counting those of the checkpoint this run resumed from.
  std::int64_t steps_done() const { return steps_done_; }
  const DataSource& data() const { return *data_; }

 private:
  // Opened by every public method: what the layers allocate meanwhile goes to train.device.
  DeviceScope on_device() const { return DeviceScope(device_); }
  void log_step(std::int64_t step, const StepResult& r, double elapsed);
  void log_eval(std::int64_t step, const EvalResult& r);
  // The end of run(): throughput, MFU, final loss, the last eval and the peak memory.
  void log_summary(const std::vector<StepResult>& results, double elapsed);
  // logging.comm_timing: this run's communication per group and operation.
  void log_comm_summary(double step_seconds);
  void log_startup();
  // Reduces `values` over the mesh group along `axis` (sum, or max), in place on every member
  // (identity for a group of one).
  void sum_over(MeshAxis axis, std::span<double> values, ReduceOp op = ReduceOp::sum);
  void reduce_gradients();
  void gather_updated_weights();
  void reduce_tp_partials(ParameterGroup& group);
  void shard_gradients_during_backward();
  void shard_weights();
  void gather_weights(std::size_t group);
  void log_memory_report();
  // Checkpoints (trainer_checkpoint.cpp). A piece of this rank's state: a flat fp32 tensor that
  // is `slice` of global tensor `tensor`; `compute` is the compute-dtype copy of master weights
  // (loading refreshes it); `writes`: this rank is the one that saves it (replicas save once).
  struct StatePiece {
    std::string tensor;
    TensorSlice slice;
    Tensor state;
    Tensor compute;
    bool writes = false;
  };
  std::vector<StatePiece> state_pieces();
  void publish_checkpoint(const std::filesystem::path& root, std::int64_t step,
                          const Tensor& files);
  // Loads the checkpoint that checkpoint.resume names ("auto": the newest intact one).
  void resume();
  void load_state(const std::filesystem::path& dir);
  // model.init_from: the weights of a HuggingFace directory or of a checkpoint (its fp32 master
  // weights; a root means its newest intact checkpoint), each rank reading its slices.
  void load_initial_weights(const std::filesystem::path& dir);
  static void install_stop_handlers();
  // Whether any rank received SIGTERM or SIGUSR1 (an all-reduce over the world).
  bool stop_requested();
  void after_step_faults();
  // The lengths of the documents in each sequence of `b` (doc-id runs), appended.
  static void append_document_lengths(const Batch& b, std::vector<std::int64_t>& lengths);
  double grad_norm();
  // This rank's part of a batch of whole sequences (its zigzag chunks under context parallel).
  LocalBatch localize(Batch full) const;
  TokenBatch token_batch(const LocalBatch& local) const;

  Config config_;
  ProcessInfo process_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Communicator> kv_group_;  // tp ranks sharing a replicated KV head
  std::unique_ptr<DataSource> data_;
  std::unique_ptr<LengthWarmup> length_warmup_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> optimizer_;
  ZeroSharding zero_;
  std::vector<Recompute> recompute_policies_;
  std::vector<Tensor> grad_shards_;   // ZeRO stage 2: this rank's reduced gradient shards
  std::vector<Tensor> value_shards_;  // ZeRO stage 3: this rank's compute-weight shards
  std::vector<std::unique_ptr<CommHandle>> prefetch_;  // stage 3: gathers in flight, per group
  std::future<void> pruning_;            // rank 0: removing checkpoints beyond checkpoint.keep
  std::unique_ptr<Communicator> world_;  // every rank of the job (checkpoints, stop signals)
  std::int64_t steps_done_ = 0;
  // Samples consumed before step 0 of this schedule: a resumed run continues the data stream
  // from the checkpoint's consumed samples even if the global batch changed.
  std::int64_t sample_offset_ = 0;
  LrSchedule schedule_;
  std::unique_ptr<MetricsWriter> metrics_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;                // logging.tensorboard, rank 0
  std::optional<std::pair<std::int64_t, EvalResult>> last_eval_;  // for the end-of-run summary
  Device device_ = Device::cpu;                                   // train.device, resolved
  std::shared_ptr<CommClock> comm_clock_;    // logging.comm_timing: every communicator books here
  CommTimes comm_run_;                       // this run's steps, per group and operation
  std::optional<DeviceScope> device_scope_;  // when not the CPU
  int threads_ = 1;
};

// Threads for this rank: train.threads, or the cores this process may use shared among the
// ranks on its node.
int resolve_threads(std::int64_t configured, int local_ranks);

DType compute_dtype(const std::string& precision);

}  // namespace lt
