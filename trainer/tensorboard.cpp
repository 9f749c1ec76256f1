#include "trainer/tensorboard.h"

#include <fmt/format.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "checkpoint/crc32c.h"
#include "trainer/config.h"
#include "trainer/mfu.h"
#include "trainer/trainer.h"

namespace lt {
namespace tensorboard {
namespace {

static_assert(std::endian::native == std::endian::little,
              "event files are little-endian; the encoders copy host integers");

// Protobuf wire types.
constexpr std::uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_key(std::string& out, std::uint32_t field, std::uint32_t wire_type) {
  put_varint(out, (field << 3) | wire_type);
}

template <typename T>
void put_fixed(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event fields 1 (wall_time) and 2 (step), which every event carries.
std::string event_header(double wall_time, std::int64_t step) {
  std::string e;
  put_key(e, 1, kFixed64);
  put_fixed(e, wall_time);
  put_key(e, 2, kVarint);
  put_varint(e, static_cast<std::uint64_t>(step));
  return e;
}

}  // namespace

std::uint32_t masked_crc32c(std::string_view bytes) {
  const std::uint32_t crc = ckpt::crc32c(std::as_bytes(std::span(bytes.data(), bytes.size())));
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string length;
  put_fixed(length, static_cast<std::uint64_t>(data.size()));
  std::string record = length;
  put_fixed(record, masked_crc32c(length));
  record.append(data);
  put_fixed(record, masked_crc32c(data));
  return record;
}

std::string file_version_event(double wall_time) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string session_start_event(double wall_time, std::int64_t step) {
  std::string session_log;
  put_key(session_log, 1, kVarint);
  put_varint(session_log, 1);  // SessionLog.START
  std::string e = event_header(wall_time, step);
  put_bytes(e, 7, session_log);
  return e;
}

std::string scalars_event(double wall_time, std::int64_t step,
                          std::span<const TensorBoardScalar> scalars) {
  std::string summary;
  for (const TensorBoardScalar& s : scalars) {
    std::string value;
    put_bytes(value, 1, s.tag);
    put_key(value, 2, kFixed32);
    put_fixed(value, static_cast<float>(s.value));
    put_bytes(summary, 1, value);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

}  // namespace tensorboard

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// Creates a new event file in `dir`: fopen's "x" mode fails on an existing name instead of
// truncating it, so two runs (or a resume) starting in the same second each get their own file.
std::FILE* create_event_file(const std::filesystem::path& dir, std::filesystem::path& path) {
  const std::string base = fmt::format("events.out.tfevents.{}.{}",
                                       static_cast<std::int64_t>(unix_seconds()), host_name());
  for (int suffix = 0;; ++suffix) {
    path = dir / (suffix == 0 ? base : fmt::format("{}.{}", base, suffix));
    if (std::FILE* f = std::fopen(path.c_str(), "wbx")) return f;
    if (errno != EEXIST) {
      throw std::runtime_error(
          fmt::format("cannot create '{}': {}", path.string(), std::strerror(errno)));
    }
  }
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir, std::int64_t first_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error(
        fmt::format("cannot create directory '{}': {}", dir.string(), ec.message()));
  }
  file_ = create_event_file(dir, path_);
  const double now = unix_seconds();
  append(tensorboard::file_version_event(now));
  append(tensorboard::session_start_event(now, first_step));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write(std::int64_t step, std::span<const TensorBoardScalar> scalars) {
  append(tensorboard::scalars_event(unix_seconds(), step, scalars));
}

void TensorBoardWriter::append(const std::string& event) {
  const std::string record = tensorboard::tfrecord(event);
  // Flushed per event, like metrics.jsonl: a crashed run keeps every step it logged.
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0) {
    throw std::runtime_error(
        fmt::format("cannot write '{}': {}", path_.string(), std::strerror(errno)));
  }
}

std::unique_ptr<TensorBoardWriter> open_tensorboard(const Config& config, int rank,
                                                    std::int64_t steps_done) {
  if (rank != 0 || config.logging.tensorboard.empty()) return nullptr;
  // The first step this run logs: the eval at step 0 of a fresh run, else the step after the
  // checkpoint's (whose own points the earlier file keeps).
  const std::int64_t first_step = steps_done == 0 ? 0 : steps_done + 1;
  try {
    return std::make_unique<TensorBoardWriter>(config.logging.tensorboard, first_step);
  } catch (const std::runtime_error& e) {
    throw ConfigError(fmt::format("logging.tensorboard: {}", e.what()));
  }
}

std::vector<TensorBoardScalar> step_scalars(const StepResult& r, const MemorySnapshot& mem,
                                            double peak_tflops, int world_size) {
  const double model_flops_per_s = r.flops.model / r.seconds;
  std::vector<TensorBoardScalar> s = {
      {"train/loss", r.loss},
      {"train/lr", r.lr},
      {"train/grad_norm", r.grad_norm},
      {"train/tokens_per_s", static_cast<double>(r.tokens) / r.seconds},
      {"train/model_tflops_per_s", model_flops_per_s / 1e12},
  };
  if (peak_tflops > 0) {
    s.push_back(
        {"train/mfu", model_flops_utilization(r.flops.model, r.seconds, peak_tflops, world_size)});
  }
  for (std::size_t c = 0; c < kNumMemCategories; ++c) {
    const auto category = static_cast<MemCategory>(c);
    s.push_back({fmt::format("memory/{}", category_name(category)),
                 static_cast<double>(mem.peak_of(category))});
  }
  s.push_back({"memory/total", static_cast<double>(mem.peak_total)});
  return s;
}

std::vector<TensorBoardScalar> eval_scalars(const EvalResult& r) {
  return {
      {"eval/loss", r.loss}, {"eval/accuracy", r.accuracy}, {"eval/exact_match", r.exact_match}};
}

}  // namespace lt
