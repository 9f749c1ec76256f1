// TensorBoard event files, written without TensorFlow or protobuf: the training scalars beside
// metrics.jsonl, so `tensorboard --logdir DIR` shows the curves of a run while it trains.
//
// An event file is a sequence of TFRecords, each holding one serialized `tensorflow.Event`:
//   uint64 length | uint32 masked CRC32C of the length bytes | data | uint32 masked CRC32C of data
// (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8). The protobuf messages are
// encoded by hand; only these fields are written:
//   Event   {double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//            SessionLog session_log = 7}
//   Summary {repeated Value value = 1}   Value {string tag = 1; float simple_value = 2}
//   SessionLog {enum status = 1 (START = 1)}
// Every file opens with file_version "brain.Event:2" and then a SessionLog START at the step the
// run starts from: TensorBoard then drops the points a crashed or resumed run logged beyond that
// step in earlier files of the directory, so a resumed run's curves have no duplicates.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/memory.h"

namespace lt {

struct Config;
struct StepResult;
struct EvalResult;

struct TensorBoardScalar {
  std::string tag;  // "train/loss"; TensorBoard groups the tags by the part before '/'
  double value;     // stored as a float (simple_value)
};

// The encoding, exposed for tests.
namespace tensorboard {
std::uint32_t masked_crc32c(std::string_view bytes);
// `data` framed as one TFRecord.
std::string tfrecord(std::string_view data);
// Serialized Event messages.
std::string file_version_event(double wall_time);
std::string session_start_event(double wall_time, std::int64_t step);
std::string scalars_event(double wall_time, std::int64_t step,
                          std::span<const TensorBoardScalar> scalars);
}  // namespace tensorboard

// One event file in `dir`. Not thread-safe; the trainer writes from rank 0 only.
class TensorBoardWriter {
 public:
  // Creates `dir` (and its parents) and a new file events.out.tfevents.<unix seconds>.<host>
  // in it (with ".1", ".2", ... appended if that name is taken: a file is never overwritten),
  // then writes the file-version event and a SessionLog START at `first_step`. Throws
  // std::runtime_error naming the directory or file when it cannot.
  TensorBoardWriter(const std::filesystem::path& dir, std::int64_t first_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event holding every scalar at `step`, flushed to the file before returning.
  void write(std::int64_t step, std::span<const TensorBoardScalar> scalars);
  const std::filesystem::path& path() const { return path_; }

 private:
  void append(const std::string& event);

  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// The trainer's side. open_tensorboard returns the writer of logging.tensorboard on rank 0, or
// null (the key is empty, or another rank), for a run that starts after `steps_done` steps (a
// resumed run: the checkpoint's step); a directory that cannot be written is a ConfigError
// naming the key and the path.
std::unique_ptr<TensorBoardWriter> open_tensorboard(const Config& config, int rank,
                                                    std::int64_t steps_done);
// train/loss, train/lr, train/grad_norm, train/tokens_per_s, train/model_tflops_per_s, train/mfu
// (only when logging.peak_tflops > 0: model FLOPs / (step seconds x world_size x peak)) and
// memory/<category> and memory/total: this step's peak bytes on this rank.
std::vector<TensorBoardScalar> step_scalars(const StepResult& r, const MemorySnapshot& mem,
                                            double peak_tflops, int world_size);
// eval/loss, eval/accuracy, eval/exact_match.
std::vector<TensorBoardScalar> eval_scalars(const EvalResult& r);

}  // namespace lt
