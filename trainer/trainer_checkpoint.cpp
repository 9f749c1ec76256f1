// Trainer checkpoints: what each rank saves (its pieces of the fp32 master weights and of Adam's
// moments, described as slices of the global tensors), how rank 0 publishes them (the
// checkpoint module's protocol), and how any layout loads them back.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/ops.h"
#include "trainer/checkpoint_locate.h"
#include "trainer/checkpoint_tensors.h"
#include "trainer/hf_error.h"
#include "trainer/hf_weights.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::int64_t> dims_of(const Shape& shape) {
  std::vector<std::int64_t> dims;
  for (int i = 0; i < shape.rank(); ++i) dims.push_back(shape[i]);
  return dims;
}

std::vector<std::uint64_t> unsigned_dims(const std::vector<std::int64_t>& dims) {
  return {dims.begin(), dims.end()};
}

// The part `part` of parameter `p` (a range of its group's flat buffer) as a slice of the
// global tensor. Vocabulary padding (the rows past the global vocabulary on the last tp rank)
// is cut off: it is zero and never saved. `part` is narrowed the same way.
TensorSlice global_slice(const Parameter& p, FlatRange& part) {
  const ParamSpec& spec = p.spec;
  TensorSlice s;
  s.global_shape = dims_of(spec.global_shape.rank() > 0 ? spec.global_shape : spec.shape);
  s.local_shape = dims_of(spec.shape);
  s.row_offset = spec.row_offset;
  s.col_offset = spec.col_offset;
  const std::int64_t valid_rows =
      std::clamp<std::int64_t>(s.global_shape[0] - s.row_offset, 0, s.local_shape[0]);
  s.local_shape[0] = valid_rows;
  const std::int64_t valid = valid_rows * s.cols();
  s.flat_begin = std::min(part.begin - p.offset, valid);
  s.flat_end = std::min(part.end() - p.offset, valid);
  part = FlatRange{p.offset + s.flat_begin, s.size()};
  return s;
}

ckpt::ShardRecord shard_record(const TensorSlice& s, const std::string& file,
                               const std::string& key) {
  ckpt::ShardRecord r;
  r.file = file;
  r.key = key;
  r.offsets = {static_cast<std::uint64_t>(s.row_offset)};
  if (s.local_shape.size() > 1) r.offsets.push_back(static_cast<std::uint64_t>(s.col_offset));
  r.shape = unsigned_dims(s.local_shape);
  if (s.flat_begin != 0 || s.flat_end != s.rows() * s.cols()) {
    r.elements = ckpt::ElementRange{static_cast<std::uint64_t>(s.flat_begin),
                                    static_cast<std::uint64_t>(s.flat_end)};
  }
  return r;
}

// A piece's place in its tensor, carried in the rank file's metadata so that rank 0 can write
// the manifest from the files alone: "global=4096,128;offsets=0,64;shape=4096,64;elements=0,9".
std::string encode_piece(const TensorSlice& s) {
  auto join = [](const std::vector<std::int64_t>& v) {
    std::string out;
    for (std::int64_t x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
    return out;
  };
  return "global=" + join(s.global_shape) + ";offsets=" + std::to_string(s.row_offset) + "," +
         std::to_string(s.col_offset) + ";shape=" + join(s.local_shape) +
         ";elements=" + std::to_string(s.flat_begin) + "," + std::to_string(s.flat_end);
}

std::vector<std::int64_t> parse_numbers(const std::string& text, const std::string& where) {
  std::vector<std::int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    const long long v = std::stoll(item, &used);
    if (used != item.size() || v < 0) throw ckpt::CheckpointError(where + ": bad number " + item);
    out.push_back(v);
  }
  return out;
}

TensorSlice decode_piece(const std::string& text, const std::string& where) {
  std::map<std::string, std::vector<std::int64_t>> fields;
  std::stringstream in(text);
  for (std::string field; std::getline(in, field, ';');) {
    const auto eq = field.find('=');
    if (eq == std::string::npos) throw ckpt::CheckpointError(where + ": malformed " + field);
    fields[field.substr(0, eq)] = parse_numbers(field.substr(eq + 1), where);
  }
  for (const char* key : {"global", "offsets", "shape", "elements"}) {
    if (!fields.contains(key)) throw ckpt::CheckpointError(where + ": no " + key);
  }
  TensorSlice s;
  s.global_shape = fields["global"];
  s.local_shape = fields["shape"];
  if (fields["offsets"].size() != 2 || fields["elements"].size() != 2) {
    throw ckpt::CheckpointError(where + ": offsets and elements need two numbers each");
  }
  s.row_offset = fields["offsets"][0];
  s.col_offset = fields["offsets"][1];
  s.flat_begin = fields["elements"][0];
  s.flat_end = fields["elements"][1];
  return s;
}

constexpr std::string_view kPieceMetadataPrefix = "longtrain.piece.";

// Checkpoint tests send a signal to one rank at a chosen point:
// LT_INJECT_SIGNAL="rank=R,step=S[,phase=step|save][,signal=KILL|TERM|USR1]" raises the signal
// (default KILL) on world rank R after step S (phase "step", the default) or in the save of
// step S, after the rank's file is written and before the checkpoint is committed ("save").
void maybe_inject_signal(int rank, std::int64_t step, std::string_view phase) {
  const char* spec = std::getenv("LT_INJECT_SIGNAL");
  if (spec == nullptr) return;
  std::map<std::string, std::string> fields{{"phase", "step"}, {"signal", "KILL"}};
  std::stringstream in(spec);
  for (std::string field; std::getline(in, field, ',');) {
    const auto eq = field.find('=');
    if (eq != std::string::npos) fields[field.substr(0, eq)] = field.substr(eq + 1);
  }
  if (fields["rank"] != std::to_string(rank) || fields["step"] != std::to_string(step) ||
      fields["phase"] != phase) {
    return;
  }
  const std::string& name = fields["signal"];
  const int signal = name == "TERM" ? SIGTERM : name == "USR1" ? SIGUSR1 : SIGKILL;
  std::fprintf(stderr, "LT_INJECT_SIGNAL: SIG%s to rank %d at %s %lld\n", name.c_str(), rank,
               fields["phase"].c_str(), static_cast<long long>(step));
  std::raise(signal);
}

}  // namespace

// ---- what this rank holds ----

std::vector<Trainer::StatePiece> Trainer::state_pieces() {
  const MeshCoords& at = mesh_->coords();
  // Without ZeRO every replica holds everything: the first one writes it. With ZeRO each replica
  // holds its shard. Slices replicated over tp (norms, shared KV heads) are written once.
  const bool replica_writes = zero_.sharded() || (at.dp == 0 && at.cp == 0);
  std::vector<StatePiece> pieces;
  for (std::size_t gi = 0; gi < model_->groups().size(); ++gi) {
    ParameterGroup& g = model_->groups()[gi];
    const FlatRange owned = optimizer_->owned(gi);
    for (const Parameter& p : g.params()) {
      FlatRange part = overlap(p, owned);
      if (part.size == 0) continue;
      const TensorSlice slice = global_slice(p, part);
      if (slice.size() == 0) continue;
      const bool tp_writes =
          p.spec.global_shape.rank() == 0 ? at.tp == 0 : at.tp % p.spec.tp_replicas == 0;
      const Shape flat{part.size};
      const std::int64_t in_state = part.begin - owned.begin;  // offset in owned-range tensors
      const Tensor master = optimizer_->master(gi).defined()
                                ? optimizer_->master(gi).flat_view(in_state, flat)
                            : value_shards_.empty() ? g.values().flat_view(part.begin, flat)
                                                    : value_shards_[gi].flat_view(in_state, flat);
      const Tensor compute = value_shards_.empty() ? g.values().flat_view(part.begin, flat)
                                                   : value_shards_[gi].flat_view(in_state, flat);
      const bool writes = replica_writes && tp_writes;
      pieces.push_back({p.spec.name, slice, master, compute, writes});
      pieces.push_back({std::string(kFirstMomentPrefix) + p.spec.name, slice,
                        optimizer_->first_moment(gi).flat_view(in_state, flat), Tensor(), writes});
      pieces.push_back({std::string(kSecondMomentPrefix) + p.spec.name, slice,
                        optimizer_->second_moment(gi).flat_view(in_state, flat), Tensor(), writes});
    }
  }
  return pieces;
}

// ---- save ----

void Trainer::save_checkpoint() {
  const DeviceScope scope = on_device();
  LT_CHECK(!config_.checkpoint.dir.empty(), "save_checkpoint without checkpoint.dir");
  const auto t0 = Clock::now();
  const std::filesystem::path root = config_.checkpoint.dir;
  const std::int64_t step = steps_done_;
  const int rank = process_.rank;
  if (rank == 0) ckpt::begin_save(root, step);
  world_->barrier();
  // This rank's file: its pieces, each with its place in the global tensor in the metadata.
  ckpt::SafetensorsWriter writer;
  bool any = false;
  std::vector<std::vector<float>> host_copies;  // device state, read back until the write
  for (const StatePiece& piece : state_pieces()) {
    if (!piece.writes) continue;
    any = true;
    std::span<const float> values;
    if (piece.state.device() == Device::cpu) {
      values = piece.state.span<float>();
    } else {
      values = host_copies.emplace_back(to_host_vector<float>(piece.state));
    }
    writer.add(piece.tensor, ckpt::TensorDtype::f32,
               {static_cast<std::uint64_t>(piece.state.numel())}, std::as_bytes(values));
    writer.set_metadata(std::string(kPieceMetadataPrefix) + piece.tensor,
                        encode_piece(piece.slice));
  }
  const std::string file = ckpt::rank_file_name(rank);
  ckpt::WrittenFile written;
  if (any) written = writer.write(ckpt::file_path(root, step, file));
  maybe_inject_signal(rank, step, "save");
  // Every rank's file size and CRC32C, to rank 0 (exact in f64 below 2^53).
  Tensor mine = Tensor::empty(Shape{3}, DType::f64, MemCategory::communication, Device::cpu);
  mine.data<double>()[0] = any ? 1.0 : 0.0;
  mine.data<double>()[1] = static_cast<double>(written.bytes);
  mine.data<double>()[2] = static_cast<double>(written.crc32c);
  Tensor all =
      Tensor::empty(Shape{3 * world_->size()}, DType::f64, MemCategory::communication, Device::cpu);
  world_->all_gather(mine, all);
  if (rank == 0) publish_checkpoint(root, step, all);
  world_->barrier();  // no rank goes on (or exits) before the checkpoint is committed
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  log_->info("checkpoint: step {} saved to {} in {:.2f} s", step,
             ckpt::step_dir(root, step).string(), seconds);
}

void Trainer::publish_checkpoint(const std::filesystem::path& root, std::int64_t step,
                                 const Tensor& files) {
  if (pruning_.valid()) pruning_.get();  // the previous save's pruning is done
  ckpt::Manifest m;
  m.step = step;
  m.consumed_samples =
      static_cast<std::uint64_t>(sample_offset_ + step * config_.train.global_batch);
  m.layout = ckpt::Layout{config_.parallel.tp, config_.parallel.cp, config_.parallel.dp,
                          config_.parallel.zero_stage, process_.world_size};
  m.lr_schedule = {{"lr", schedule_.at(std::max<std::int64_t>(step - 1, 0))},
                   {"adam_steps", static_cast<double>(optimizer_->steps_taken())}};
  m.rng = {{"seed", {config_.train.seed}}};
  m.config_yaml = config_to_yaml(config_);
  std::map<std::string, std::size_t> tensor_index;
  const double* info = files.data<double>();
  for (int r = 0; r < process_.world_size; ++r) {
    if (info[3 * r] == 0.0) continue;
    const std::string name = ckpt::rank_file_name(r);
    m.files.push_back({name, static_cast<std::uint64_t>(info[3 * r + 1]),
                       static_cast<std::uint32_t>(info[3 * r + 2])});
    const ckpt::SafetensorsReader reader(ckpt::file_path(root, step, name));
    for (const auto& [key, value] : reader.header().metadata) {
      if (!key.starts_with(kPieceMetadataPrefix)) continue;
      const std::string tensor = key.substr(kPieceMetadataPrefix.size());
      const TensorSlice slice = decode_piece(value, name + ": " + key);
      auto [it, added] = tensor_index.emplace(tensor, m.tensors.size());
      if (added) {
        m.tensors.push_back(
            {tensor, ckpt::TensorDtype::f32, unsigned_dims(slice.global_shape), {}});
      }
      m.tensors[it->second].shards.push_back(shard_record(slice, name, tensor));
    }
  }
  ckpt::commit_save(root, step, m);
  // Deleting old checkpoints (gigabytes of files) overlaps the next steps instead of the save.
  const int keep = static_cast<int>(config_.checkpoint.keep);
  pruning_ = std::async(std::launch::async, [root, keep, log = log_] {
    for (const auto& removed : ckpt::prune(root, keep)) {
      log->info("checkpoint: removed {}", removed.string());
    }
  });
}

// ---- resume ----

void Trainer::resume() {
  const std::string& want = config_.checkpoint.resume;
  if (want.empty()) return;
  // Rank 0 chooses and verifies (reading every file once); the others take its word.
  std::filesystem::path chosen;
  std::string problem;
  if (process_.rank == 0) {
    if (want == "auto") {
      if (config_.checkpoint.dir.empty()) {
        problem = "checkpoint.resume is auto but checkpoint.dir is empty";
      } else if (auto found = ckpt::find_latest_valid(
                     config_.checkpoint.dir,
                     [&](const std::string& why) { log_->warn("checkpoint: {}", why); })) {
        chosen = found->dir;
      }
    } else {
      std::filesystem::path dir = want;
      if (!std::filesystem::exists(dir / ckpt::kManifestFileName)) {
        if (auto found = ckpt::find_latest_valid(
                dir, [&](const std::string& why) { log_->warn("checkpoint: {}", why); })) {
          dir = found->dir;
        }
      }
      const ckpt::VerifyResult ok = ckpt::verify(dir);
      if (ok) {
        chosen = dir;
      } else {
        problem = "checkpoint.resume '" + want + "': " + ok.problem;
      }
    }
  }
  // Broadcast the choice: a path's bytes (or a problem) as f64 values.
  const std::string message = problem.empty() ? chosen.string() : "!" + problem;
  Tensor length = Tensor::empty(Shape{1}, DType::f64, MemCategory::communication, Device::cpu);
  length.data<double>()[0] = static_cast<double>(message.size());
  world_->broadcast(length, 0);
  Tensor text = Tensor::empty(Shape{static_cast<std::int64_t>(length.data<double>()[0]) + 1},
                              DType::f64, MemCategory::communication, Device::cpu);
  for (std::size_t i = 0; i < message.size() && process_.rank == 0; ++i) {
    text.data<double>()[i] = static_cast<unsigned char>(message[i]);
  }
  world_->broadcast(text, 0);
  std::string received;
  for (std::int64_t i = 0; i + 1 < text.numel(); ++i) {
    received += static_cast<char>(static_cast<int>(text.data<double>()[i]));
  }
  if (received.starts_with("!")) throw ConfigError(received.substr(1));
  if (received.empty()) {
    log_->info("checkpoint: none under {}: starting from step 0", config_.checkpoint.dir);
    return;
  }
  load_state(received);
}

void Trainer::load_state(const std::filesystem::path& dir) {
  const auto t0 = Clock::now();
  const ckpt::Manifest m = ckpt::read_manifest(dir / ckpt::kManifestFileName);
  std::map<std::string, const ckpt::TensorRecord*> tensors;
  for (const ckpt::TensorRecord& t : m.tensors) tensors[t.name] = &t;
  CheckpointTensorReader reader(dir);
  std::vector<float> values;
  for (const StatePiece& piece : state_pieces()) {
    auto it = tensors.find(piece.tensor);
    if (it == tensors.end()) {
      throw ConfigError(
          fmt::format("checkpoint {}: no tensor {} (another model?)", dir.string(), piece.tensor));
    }
    values.resize(static_cast<std::size_t>(piece.state.numel()));
    reader.read(*it->second, piece.slice, values);
    copy_from_host(values.data(), values.size() * sizeof(float), piece.state);
    // The compute weights are the master rounded to the compute dtype (the same as after a step).
    if (piece.compute.defined() && piece.compute.raw() != piece.state.raw()) {
      copy(piece.state, piece.compute);
    }
  }
  optimizer_->set_steps_taken(static_cast<std::int64_t>(m.lr_schedule.at("adam_steps")));
  gather_updated_weights();  // ZeRO 1-2: every rank needs the others' shards of the weights
  steps_done_ = m.step;
  sample_offset_ =
      static_cast<std::int64_t>(m.consumed_samples) - m.step * config_.train.global_batch;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  log_->info(
      "checkpoint: resumed from {} (step {}, saved by tp {} cp {} dp {} zero {}) in {:.2f} s",
      dir.string(), m.step, m.layout.tp, m.layout.cp, m.layout.dp, m.layout.zero_stage, seconds);
}

// ---- initial weights: a HuggingFace directory or a longtrain checkpoint ----

namespace {

// Reads a slice of a named weight tensor as fp32, whatever holds it.
struct WeightSource {
  std::string label;  // for messages
  std::function<bool(const std::string&)> contains;
  std::function<void(const std::string&, const TensorSlice&, std::span<float>)> read;
};

// A checkpoint step directory or root (manifest, `latest` or step_N directories in it), as
// opposed to a HuggingFace directory.
bool names_a_checkpoint(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / ckpt::kManifestFileName) ||
      std::filesystem::exists(dir / ckpt::kLatestFileName))
    return true;
  return std::filesystem::is_directory(dir) && !ckpt::list_steps(dir).empty();
}

// The fp32 master weights of the checkpoint `path` names (its newest intact one for a root).
WeightSource checkpoint_weights(const std::filesystem::path& path, spdlog::logger& log) {
  ckpt::FoundCheckpoint found;
  try {
    found = find_checkpoint(path, [&](const std::string& w) { log.warn("{}", w); });
  } catch (const HfError& e) {
    throw ConfigError(fmt::format("model.init_from: {}", e.what()));
  }
  auto reader = std::make_shared<CheckpointTensorReader>(found.dir);
  auto manifest = std::make_shared<ckpt::Manifest>(std::move(found.manifest));
  return {
      fmt::format("{} (step {})", found.dir.string(), manifest->step),
      [manifest](const std::string& name) { return manifest->find_tensor(name) != nullptr; },
      [manifest, reader](const std::string& name, const TensorSlice& slice, std::span<float> out) {
        reader->read(*manifest->find_tensor(name), slice, out);
      }};
}

WeightSource hf_weights(const std::filesystem::path& dir) {
  auto weights = std::make_shared<HfWeights>(dir);
  return {dir.string(), [weights](const std::string& name) { return weights->contains(name); },
          [weights](const std::string& name, const TensorSlice& slice, std::span<float> out) {
            weights->read(name, slice, out);
          }};
}

}  // namespace

void Trainer::load_initial_weights(const std::filesystem::path& dir) {
  const auto t0 = Clock::now();
  const WeightSource source =
      names_a_checkpoint(dir) ? checkpoint_weights(dir, *log_) : hf_weights(dir);
  std::vector<float> values;
  for (const StatePiece& piece : state_pieces()) {
    if (!piece.compute.defined()) continue;  // Adam's moments start at zero
    if (!source.contains(piece.tensor)) {
      throw ConfigError(fmt::format("model.init_from {}: no tensor {} (another model?)",
                                    source.label, piece.tensor));
    }
    values.resize(static_cast<std::size_t>(piece.state.numel()));
    try {
      source.read(piece.tensor, piece.slice, values);
    } catch (const Error& e) {  // a tensor of another shape: the model keys differ
      throw ConfigError(
          fmt::format("model.init_from {}: tensor {}: {}", source.label, piece.tensor, e.what()));
    }
    copy_from_host(values.data(), values.size() * sizeof(float), piece.state);
    if (piece.compute.raw() != piece.state.raw()) copy(piece.state, piece.compute);
  }
  gather_updated_weights();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  log_->info("model: weights from {} in {:.2f} s", source.label, seconds);
}

// ---- stop signals ----

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) {
  g_stop_signal = signal;
}
}  // namespace

void Trainer::install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

bool Trainer::stop_requested() {
  Tensor flag = Tensor::empty(Shape{1}, DType::f64, MemCategory::communication, Device::cpu);
  flag.data<double>()[0] = static_cast<double>(g_stop_signal);
  world_->all_reduce(flag, ReduceOp::max);
  const int signal = static_cast<int>(flag.data<double>()[0]);
  if (signal != 0) {
    log_->warn("received {}: finishing with step {}", signal == SIGTERM ? "SIGTERM" : "SIGUSR1",
               steps_done_);
  }
  return signal != 0;
}

void Trainer::after_step_faults() {
  maybe_inject_signal(process_.rank, steps_done_, "step");
}

}  // namespace lt
