// TensorBoard event files (trainer/tensorboard.h), read back by a reader written here from the
// format's description alone: its own bitwise CRC32C checks both checksums of every TFRecord,
// and a generic protobuf decoder takes the Event, Summary and SessionLog fields apart.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "trainer/config.h"
#include "trainer/tensorboard.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

// --- an independent reader ------------------------------------------------------------------

std::uint32_t bitwise_crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xffffffffu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::uint32_t mask(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

template <typename T>
T read_le(std::string_view bytes, std::size_t at) {
  T v{};
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  return v;
}

// The records of an event file, each checked against both masked CRCs.
std::vector<std::string> read_records(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  std::size_t at = 0;
  while (at < file.size()) {
    EXPECT_GE(file.size() - at, 12u) << "truncated header at byte " << at;
    const auto length = read_le<std::uint64_t>(file, at);
    EXPECT_EQ(read_le<std::uint32_t>(file, at + 8), mask(bitwise_crc32c(file.substr(at, 8))))
        << "length CRC of the record at byte " << at;
    const std::string data = file.substr(at + 12, length);
    EXPECT_EQ(data.size(), length) << "truncated record at byte " << at;
    EXPECT_EQ(read_le<std::uint32_t>(file, at + 12 + length), mask(bitwise_crc32c(data)))
        << "data CRC of the record at byte " << at;
    records.push_back(data);
    at += 12 + length + 4;
  }
  return records;
}

// A protobuf field: the varint or fixed-width value, or the bytes of a length-delimited one.
struct Field {
  std::uint32_t number = 0;
  std::uint32_t wire_type = 0;
  std::uint64_t integer = 0;
  std::string bytes;
};

std::uint64_t read_varint(std::string_view s, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0; at < s.size(); shift += 7) {
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= std::uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
  ADD_FAILURE() << "varint runs past the message";
  return v;
}

std::vector<Field> decode(std::string_view message) {
  std::vector<Field> fields;
  for (std::size_t at = 0; at < message.size();) {
    const std::uint64_t key = read_varint(message, at);
    Field f;
    f.number = static_cast<std::uint32_t>(key >> 3);
    f.wire_type = static_cast<std::uint32_t>(key & 7);
    switch (f.wire_type) {
      case 0:
        f.integer = read_varint(message, at);
        break;
      case 1:
        f.integer = read_le<std::uint64_t>(message, at);
        at += 8;
        break;
      case 2: {
        const std::uint64_t n = read_varint(message, at);
        f.bytes = std::string(message.substr(at, n));
        at += n;
        break;
      }
      case 5:
        f.integer = read_le<std::uint32_t>(message, at);
        at += 4;
        break;
      default:
        ADD_FAILURE() << "unexpected wire type " << f.wire_type;
        return fields;
    }
    fields.push_back(f);
  }
  return fields;
}

struct Event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::optional<std::string> file_version;
  std::optional<std::uint64_t> session_status;
  std::map<std::string, float> scalars;  // tag -> simple_value
};

std::map<std::string, float> decode_summary(std::string_view summary) {
  std::map<std::string, float> out;
  for (const Field& value : decode(summary)) {
    EXPECT_EQ(value.number, 1u);  // Summary.value
    std::string tag;
    float simple = NAN;
    for (const Field& f : decode(value.bytes)) {
      if (f.number == 1) tag = f.bytes;
      if (f.number == 2 && f.wire_type == 5) {
        simple = std::bit_cast<float>(static_cast<std::uint32_t>(f.integer));
      }
    }
    out[tag] = simple;
  }
  return out;
}

Event decode_event(std::string_view data) {
  Event e;
  for (const Field& f : decode(data)) {
    if (f.number == 1) e.wall_time = std::bit_cast<double>(f.integer);
    if (f.number == 2) e.step = static_cast<std::int64_t>(f.integer);
    if (f.number == 3) e.file_version = f.bytes;
    if (f.number == 5) e.scalars = decode_summary(f.bytes);
    if (f.number == 7) {
      for (const Field& s : decode(f.bytes)) {
        if (s.number == 1) e.session_status = s.integer;
      }
    }
  }
  return e;
}

std::vector<Event> read_events(const fs::path& path) {
  std::vector<Event> events;
  for (const std::string& r : read_records(path)) events.push_back(decode_event(r));
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / name;
  fs::remove_all(dir);
  return dir;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- the tests ------------------------------------------------------------------------------

TEST(TensorBoard, MaskedCrcIsTheFormatsOnKnownData) {
  // CRC32C("123456789") = 0xe3069283, the check value of the Castagnoli polynomial.
  EXPECT_EQ(bitwise_crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(tensorboard::masked_crc32c("123456789"), mask(0xe3069283u));
  const std::string record = tensorboard::tfrecord("abc");
  ASSERT_EQ(record.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(read_le<std::uint64_t>(record, 0), 3u);
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(read_le<std::uint32_t>(record, 15), mask(bitwise_crc32c("abc")));
}

// The bytes of one scalar event, encoded by hand from the .proto field numbers.
TEST(TensorBoard, ScalarEventHasTheProtobufBytes) {
  const TensorBoardScalar s[] = {{"a", 2.0}};
  std::string expected = "\x09";  // field 1, fixed64: wall_time
  const double wall = 1.5;
  expected.append(reinterpret_cast<const char*>(&wall), 8);
  expected += std::string("\x10\x03", 2);              // field 2, varint: step 3
  expected += std::string("\x2a\x0a", 2);              // field 5, 10 bytes: Summary
  expected += std::string("\x0a\x08", 2);              //   field 1, 8 bytes: Value
  expected += std::string("\x0a\x01", 2) + "a";        //     field 1: tag "a"
  expected += std::string("\x15\x00\x00\x00\x40", 5);  //     field 2, fixed32: 2.0f
  EXPECT_EQ(tensorboard::scalars_event(1.5, 3, s), expected);
}

TEST(TensorBoard, WriterFileReadsBackWithBothCrcsAndEveryField) {
  const fs::path dir = fresh_dir("tb_writer") / "nested";
  const double before = now_seconds();
  std::string name;
  {
    TensorBoardWriter w(dir, 0);
    name = w.path().filename().string();
    const TensorBoardScalar step1[] = {{"train/loss", 5.25}, {"train/lr", 3e-4}};
    w.write(1, step1);
    const TensorBoardScalar step2[] = {{"train/loss", 4.5}, {"memory/total", 123456789.0}};
    w.write(2, step2);
  }
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(events\.out\.tfevents\.\d{10}\.[^.].*)")))
      << name;
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  const auto events = read_events(files[0]);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[1].session_status, 1u);  // SessionLog START
  EXPECT_EQ(events[1].step, 0);
  for (const Event& e : events) {
    EXPECT_GE(e.wall_time, std::floor(before));
    EXPECT_LE(e.wall_time, now_seconds());
  }
  EXPECT_EQ(events[2].step, 1);
  EXPECT_EQ(events[2].scalars,
            (std::map<std::string, float>{{"train/loss", 5.25f}, {"train/lr", 3e-4f}}));
  EXPECT_EQ(events[3].step, 2);
  EXPECT_EQ(events[3].scalars.at("memory/total"), 123456789.0f);
}

// A resumed run (or a second run in the same second) gets its own file: nothing is overwritten.
TEST(TensorBoard, EveryWriterCreatesItsOwnFile) {
  const fs::path dir = fresh_dir("tb_two");
  const TensorBoardScalar s[] = {{"x", 1.0}};
  TensorBoardWriter(dir, 0).write(1, s);
  TensorBoardWriter(dir, 2).write(2, s);
  TensorBoardWriter(dir, 3).write(3, s);
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 3u);
  std::map<std::int64_t, std::int64_t> start_steps;  // START step -> scalar step
  for (const auto& f : files) {
    const auto events = read_events(f);
    ASSERT_EQ(events.size(), 3u) << f;
    start_steps[events[1].step] = events[2].step;
  }
  EXPECT_EQ(start_steps, (std::map<std::int64_t, std::int64_t>{{0, 1}, {2, 2}, {3, 3}}));
}

TEST(TensorBoard, UnwritableDirectoryIsAnErrorNamingIt) {
  const fs::path dir = fresh_dir("tb_bad");
  fs::create_directories(dir);
  std::ofstream(dir / "a_file") << "not a directory";
  const fs::path bad = dir / "a_file" / "tb";
  try {
    TensorBoardWriter w(bad, 0);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  Config config;
  config.logging.tensorboard = bad.string();
  try {
    open_tensorboard(config, 0, 0);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("logging.tensorboard"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(open_tensorboard(config, 1, 0), nullptr) << "only rank 0 writes";
  config.logging.tensorboard = "";
  EXPECT_EQ(open_tensorboard(config, 0, 0), nullptr);
}

TEST(TensorBoard, StepScalarsAreTheStepResultAndMfuOnlyWithAPeak) {
  StepResult r;
  r.loss = 2.5;
  r.lr = 1e-3;
  r.grad_norm = 0.75;
  r.tokens = 1000;
  r.seconds = 0.5;
  r.flops.model = 4e12;
  MemorySnapshot mem;
  mem.peak[static_cast<std::size_t>(MemCategory::weights)] = 1024;
  mem.peak_total = 4096;
  std::map<std::string, double> got;
  for (const auto& s : step_scalars(r, mem, 2.0, 4)) got[s.tag] = s.value;
  EXPECT_EQ(got.at("train/loss"), 2.5);
  EXPECT_EQ(got.at("train/lr"), 1e-3);
  EXPECT_EQ(got.at("train/grad_norm"), 0.75);
  EXPECT_EQ(got.at("train/tokens_per_s"), 2000.0);
  EXPECT_EQ(got.at("train/model_tflops_per_s"), 8.0);
  EXPECT_EQ(got.at("train/mfu"), 1.0);  // 8 TFLOP/s over 4 ranks of 2 TFLOP/s peak
  EXPECT_EQ(got.at("memory/weights"), 1024.0);
  EXPECT_EQ(got.at("memory/grads"), 0.0);
  EXPECT_EQ(got.at("memory/total"), 4096.0);
  for (const auto& s : step_scalars(r, mem, 0.0, 4)) EXPECT_NE(s.tag, "train/mfu");
}

// A real training run logs every step's StepResult and the evals.
TEST(TensorBoard, TrainerLogsEveryStepAndEval) {
  const fs::path dir = fresh_dir("tb_trainer");
  const Config config = parse_config(R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 3, global_batch: 2, micro_batch: 1, eval_every: 2, eval_samples: 4, threads: 1}
precision: fp32
logging: {dir: "", level: warn, peak_tflops: 0.5}
)",
                                     "tb.yaml", {"logging.tensorboard=" + dir.string()});
  std::vector<StepResult> results;
  {
    Trainer trainer(config, ProcessInfo{});
    results = trainer.run();
  }
  ASSERT_EQ(results.size(), 3u);
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  std::map<std::int64_t, std::map<std::string, float>> by_step;
  for (const Event& e : read_events(files[0])) {
    for (const auto& [tag, v] : e.scalars) by_step[e.step][tag] = v;
  }
  for (std::int64_t step = 1; step <= 3; ++step) {
    const StepResult& r = results[static_cast<std::size_t>(step - 1)];
    const auto& s = by_step[step];
    EXPECT_EQ(s.at("train/loss"), static_cast<float>(r.loss)) << step;
    EXPECT_EQ(s.at("train/lr"), static_cast<float>(r.lr)) << step;
    EXPECT_EQ(s.at("train/grad_norm"), static_cast<float>(r.grad_norm)) << step;
    EXPECT_GT(s.at("train/mfu"), 0.0f) << step;
    EXPECT_GT(s.at("memory/activations"), 0.0f) << step;
  }
  for (std::int64_t step : {0, 2, 3}) EXPECT_TRUE(by_step[step].contains("eval/accuracy")) << step;
}

}  // namespace
}  // namespace lt
