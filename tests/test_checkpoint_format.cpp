// The checkpoint file formats: CRC32C, safetensors (writer, validating reader) and the manifest
// (writer, validating parser). The directory protocol is in test_checkpoint_protocol.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint_test_util.h"

namespace lt::ckpt {
namespace {

using test::bytes_of;
using test::expect_error;
using test::read_file;
using test::ScratchDir;
using test::write_file;

// ---------------------------------------------------------------------------------------------
// CRC32C

std::vector<std::byte> pattern_bytes(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> out(n);
  std::uint32_t x = seed;
  for (std::byte& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return out;
}

TEST(Crc32c, KnownVectors) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(bytes_of(digits)), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  std::vector<std::uint8_t> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  std::iota(up.begin(), up.end(), 0);
  for (int i = 0; i < 32; ++i) down[i] = static_cast<std::uint8_t>(31 - i);
  EXPECT_EQ(crc32c(bytes_of(zeros)), 0x8A9136AAu);
  EXPECT_EQ(crc32c(bytes_of(ones)), 0x62A8AB43u);
  EXPECT_EQ(crc32c(bytes_of(up)), 0x46DD794Eu);
  EXPECT_EQ(crc32c(bytes_of(down)), 0x113FDB5Cu);
  EXPECT_EQ(crc32c_portable(bytes_of(digits)), 0xE3069283u);
}

TEST(Crc32c, IncrementalEqualsOneShot) {
  const std::vector<std::byte> data = pattern_bytes(100'003, 7);
  const std::uint32_t whole = crc32c(data);
  for (const std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8},
                                std::size_t{4097}, data.size() - 3, data.size()}) {
    const auto span = std::span(data);
    EXPECT_EQ(crc32c(span.subspan(cut), crc32c(span.first(cut))), whole) << "cut at " << cut;
  }
  std::uint32_t running = 0;
  for (std::size_t at = 0; at < data.size(); at += 333)
    running =
        crc32c(std::span(data).subspan(at, std::min<std::size_t>(333, data.size() - at)), running);
  EXPECT_EQ(running, whole);
}

TEST(Crc32c, HardwarePathMatchesTables) {
  const std::vector<std::byte> data = pattern_bytes(5000, 11);
  for (std::size_t offset = 0; offset < 9; ++offset)  // every alignment
    for (const std::size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 4000}) {
      const auto piece = std::span(data).subspan(offset, n);
      EXPECT_EQ(crc32c(piece, 0x12345678u), crc32c_portable(piece, 0x12345678u))
          << "offset " << offset << " size " << n;
    }
}

TEST(Shape, CountsWithoutWrapping) {
  const std::vector<std::uint64_t> big{std::uint64_t{1} << 32, std::uint64_t{1} << 31};
  EXPECT_EQ(element_count(big), std::uint64_t{1} << 63);
  EXPECT_EQ(byte_count(big, TensorDtype::u8), std::uint64_t{1} << 63);
  EXPECT_FALSE(byte_count(big, TensorDtype::bf16).has_value());
  EXPECT_FALSE(
      element_count(std::vector<std::uint64_t>{std::uint64_t{1} << 32, std::uint64_t{1} << 32})
          .has_value());
  EXPECT_EQ(element_count({}), 1u);
  EXPECT_EQ(byte_count(std::vector<std::uint64_t>{3, 0}, TensorDtype::f64), 0u);
}

// ---------------------------------------------------------------------------------------------
// safetensors

// The raw bytes of a safetensors file with the given header text and data section.
std::string raw_safetensors(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  return out + header + data;
}

SafetensorsHeader parse_raw(const std::string& file) {
  return parse_safetensors_header(bytes_of(file), file.size(), "crafted.safetensors");
}

TEST(Safetensors, RoundTripsEveryDtypeEmptyTensorsAndMetadata) {
  ScratchDir dir("roundtrip");
  SafetensorsWriter writer;
  std::vector<std::vector<std::byte>> payloads;
  for (const TensorDtype dtype : all_dtypes())
    payloads.push_back(pattern_bytes(2 * 3 * dtype_size(dtype), static_cast<std::uint32_t>(dtype)));
  for (std::size_t i = 0; i < all_dtypes().size(); ++i) {
    const TensorDtype dtype = all_dtypes()[i];
    writer.add(std::string("t_") + std::string(dtype_name(dtype)), dtype, {2, 3}, payloads[i]);
  }
  const std::vector<std::byte> scalar = pattern_bytes(8, 99);
  writer.add("empty", TensorDtype::f32, {0, 4}, std::span<const std::byte>());
  writer.add("scalar", TensorDtype::f64, {}, scalar);
  writer.add("model.layers.0.\"odd\\name\"", TensorDtype::u8, {1}, std::span(scalar).first(1));
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "line\nbreak \"quoted\" \\ é");

  const auto path = dir / "a.safetensors";
  const WrittenFile written = writer.write(path);
  EXPECT_EQ(written.bytes, std::filesystem::file_size(path));
  EXPECT_EQ(written.crc32c, file_crc32c(path));

  const SafetensorsReader reader(path);
  EXPECT_EQ(reader.header().metadata.at("format"), "pt");
  EXPECT_EQ(reader.header().metadata.at("note"), "line\nbreak \"quoted\" \\ é");
  ASSERT_EQ(reader.header().tensors.size(), all_dtypes().size() + 3);
  for (std::size_t i = 0; i < all_dtypes().size(); ++i) {
    const TensorDtype dtype = all_dtypes()[i];
    const std::string name = std::string("t_") + std::string(dtype_name(dtype));
    const TensorEntry& e = reader.entry(name);
    EXPECT_EQ(e.dtype, dtype) << name;
    EXPECT_EQ(e.shape, (std::vector<std::uint64_t>{2, 3})) << name;
    EXPECT_EQ(e.elements(), 6u) << name;
    std::vector<std::byte> back(e.bytes());
    reader.read(name, back);
    EXPECT_EQ(back, payloads[i]) << name;
  }
  EXPECT_EQ(reader.entry("empty").bytes(), 0u);
  EXPECT_EQ(reader.entry("empty").shape, (std::vector<std::uint64_t>{0, 4}));
  EXPECT_TRUE(reader.entry("scalar").shape.empty());
  std::vector<std::byte> back(8);
  reader.read("scalar", back);
  EXPECT_EQ(back, scalar);
  EXPECT_EQ(reader.entry("model.layers.0.\"odd\\name\"").bytes(), 1u);
}

TEST(Safetensors, HeaderIsTheHuggingFaceLayout) {
  SafetensorsWriter writer;
  const std::vector<float> w{1, 2, 3, 4, 5, 6};
  writer.add("w", TensorDtype::f32, {2, 3}, bytes_of(w));
  writer.add("b", TensorDtype::f32, {2}, bytes_of(w).first(8));
  const std::string bytes = writer.header_bytes();
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian host
  EXPECT_EQ(n + 8, bytes.size());
  EXPECT_EQ(n % 8, 0u) << "the data section starts 8-byte aligned";
  const std::string json = bytes.substr(8);
  EXPECT_EQ(json.substr(0, json.find_last_not_of(' ') + 1),
            R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})");
}

TEST(Safetensors, ReadsSubRangesForResharding) {
  ScratchDir dir("subrange");
  std::vector<std::int32_t> values(100);
  std::iota(values.begin(), values.end(), 0);
  const std::string pad = "xyz";  // borrowed by the writer until write()
  SafetensorsWriter writer;
  writer.add("pad", TensorDtype::u8, {3}, bytes_of(pad));
  writer.add("v", TensorDtype::i32, {10, 10}, bytes_of(values));
  writer.write(dir / "s.safetensors");
  const SafetensorsReader reader(dir / "s.safetensors");
  std::vector<std::int32_t> row(10);
  reader.read("v", 4 * 30, std::as_writable_bytes(std::span(row)));
  EXPECT_EQ(row.front(), 30);
  EXPECT_EQ(row.back(), 39);
  expect_error([&] { reader.read("v", 4 * 95, std::as_writable_bytes(std::span(row))); },
               {"s.safetensors", "\"v\"", "outside"});
  expect_error([&] { reader.read("v", std::as_writable_bytes(std::span(row))); },
               {"s.safetensors", "\"v\" has 400 bytes"});
  expect_error([&] { reader.entry("missing"); }, {"s.safetensors", "no tensor \"missing\""});
}

TEST(Safetensors, ProducerStreamsTensorsLargerThanThePieceSize) {
  ScratchDir dir("producer");
  const std::uint64_t count = (std::uint64_t{20} << 20) / 4 + 3;  // 20 MiB + 12 bytes of i32
  SafetensorsWriter writer;
  writer.add("big", TensorDtype::i32, {count},
             [](std::uint64_t byte_offset, std::span<std::byte> out) {
               ASSERT_EQ(byte_offset % 4, 0u);
               ASSERT_EQ(out.size() % 4, 0u);
               for (std::size_t i = 0; i < out.size() / 4; ++i) {
                 const auto v = static_cast<std::int32_t>(byte_offset / 4 + i);
                 std::memcpy(out.data() + 4 * i, &v, 4);
               }
             });
  const std::string ok = "ok";  // borrowed by the writer until write()
  writer.add("tail", TensorDtype::u8, {2}, bytes_of(ok));
  const WrittenFile written = writer.write(dir / "big.safetensors");
  EXPECT_EQ(written.crc32c, file_crc32c(dir / "big.safetensors"));
  const SafetensorsReader reader(dir / "big.safetensors");
  for (const std::uint64_t i : {std::uint64_t{0}, std::uint64_t{1} << 21, count - 1}) {
    std::int32_t v = -1;
    reader.read("big", 4 * i, std::as_writable_bytes(std::span(&v, 1)));
    EXPECT_EQ(v, static_cast<std::int32_t>(i));
  }
  std::string tail(2, ' ');
  reader.read("tail", std::as_writable_bytes(std::span(tail.data(), 2)));
  EXPECT_EQ(tail, "ok");
}

TEST(Safetensors, ReadsCompactHeadersAsHuggingFaceWritesThem) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const SafetensorsHeader h = parse_raw(raw_safetensors(header, std::string(12, '\1')));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");  // in data order
  EXPECT_EQ(h.find("b")->dtype, TensorDtype::bf16);
  EXPECT_EQ(h.find("b")->begin, 8u);
  EXPECT_EQ(h.data_start, 8 + header.size());
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.find("c"), nullptr);
}

TEST(Safetensors, RejectsATruncatedFile) {
  ScratchDir dir("truncated");
  SafetensorsWriter writer;
  writer.add("w", TensorDtype::f32, {4}, bytes_of(std::vector<float>{1, 2, 3, 4}));
  writer.write(dir / "t.safetensors");
  std::filesystem::resize_file(dir / "t.safetensors",
                               std::filesystem::file_size(dir / "t.safetensors") - 1);
  expect_error([&] { SafetensorsReader reader(dir / "t.safetensors"); },
               {"t.safetensors", "w.data_offsets", "runs past the data section", "truncated"});
  std::filesystem::resize_file(dir / "t.safetensors", 5);
  expect_error([&] { SafetensorsReader reader(dir / "t.safetensors"); },
               {"t.safetensors", "5 bytes, too short"});
  expect_error([&] { SafetensorsReader reader(dir / "missing.safetensors"); },
               {"missing.safetensors", "cannot open", "No such file"});
}

TEST(Safetensors, RejectsHeaderLengthsBeyondTheFileOrTheCap) {
  std::string file = raw_safetensors("{}");
  file[0] = 100;
  expect_error([&] { parse_raw(file); },
               {"crafted.safetensors", "header length 100 runs past the end of the file"});
  file = raw_safetensors("{}");
  file[7] = 1;  // 2^56 + 2
  expect_error([&] { parse_raw(file); }, {"crafted.safetensors", "exceeds the limit"});
  expect_error(
      [&] {
        const std::string small = raw_safetensors("{}");
        parse_safetensors_header(bytes_of(small).first(9), small.size(), "prefix");
      },
      {"prefix", "needs the first 10 bytes"});
}

struct BadHeader {
  std::string name;
  std::string header;
  std::string data;
  std::vector<std::string> message;
};

class SafetensorsRejects : public testing::TestWithParam<BadHeader> {};

TEST_P(SafetensorsRejects, WithAMessageNamingTheFileAndEntry) {
  const BadHeader& c = GetParam();
  std::vector<std::string> parts{"crafted.safetensors"};
  parts.insert(parts.end(), c.message.begin(), c.message.end());
  expect_error([&] { parse_raw(raw_safetensors(c.header, c.data)); }, parts);
}

const std::string kEight(8, 'x');

INSTANTIATE_TEST_SUITE_P(
    Headers, SafetensorsRejects,
    testing::Values(
        BadHeader{"overlap",
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  kEight,
                  {"\"b\"", "overlap tensor \"a\""}},
        BadHeader{"gap",
                  R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                  kEight,
                  {"bytes [0, 4) of the data section belong to no tensor"}},
        BadHeader{"trailing",
                  R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                  kEight,
                  {"holds 8 bytes but the tensors end at byte 4"}},
        BadHeader{"out_of_range",
                  R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})",
                  kEight,
                  {"a.data_offsets", "runs past the data section of 8 bytes"}},
        BadHeader{"wrong_byte_count",
                  R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                  kEight,
                  {"a.data_offsets", "holds 8 bytes but shape [3] of F32 needs 12"}},
        BadHeader{"overflowing_shape",
                  R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                  kEight,
                  {"a.data_offsets", "needs more than 2^64"}},
        BadHeader{"begin_after_end",
                  R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})",
                  kEight,
                  {"begin 8 is after end 0"}},
        BadHeader{"unknown_dtype",
                  R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})",
                  kEight,
                  {"a.dtype", "unknown dtype \"F4\"", "BF16"}},
        BadHeader{"duplicate_names",
                  R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                  R"("a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                  kEight,
                  {"key \"a\" appears twice"}},
        BadHeader{"trailing_comma",
                  R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],}})",
                  kEight,
                  {"malformed JSON", "a string key"}},
        BadHeader{"unclosed", R"({"a":{"dtype":"U8")", kEight, {"malformed JSON"}},
        BadHeader{"yaml_not_json",
                  R"({a: {dtype: U8, shape: [8], data_offsets: [0, 8]}})",
                  kEight,
                  {"malformed JSON", "a string key"}},
        BadHeader{"yaml_alias", R"({"a": &x [1], "b": *x})", kEight, {"malformed JSON"}},
        BadHeader{"deep_nesting",
                  std::string(5000, '[') + std::string(5000, ']'),
                  "",
                  {"malformed JSON", "nesting of at most 32 levels"}},
        BadHeader{"control_character", "{\"a\x01\":1}", "", {"no control character"}},
        BadHeader{"bad_escape", R"({"\x41":1})", "", {"an escape"}},
        BadHeader{"not_an_object", "[1, 2]", "", {"expected an object, found an array"}},
        BadHeader{"negative_offset",
                  R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[-1,8]}})",
                  kEight,
                  {"a.data_offsets[0]", "expected an integer from 0"}},
        BadHeader{"fractional_shape",
                  R"({"a":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}})",
                  kEight,
                  {"a.shape[0]", "found 8.0"}},
        BadHeader{"string_shape",
                  R"({"a":{"dtype":"U8","shape":"8","data_offsets":[0,8]}})",
                  kEight,
                  {"a.shape", "expected an array, found a string"}},
        BadHeader{"three_offsets",
                  R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8,8]}})",
                  kEight,
                  {"a.data_offsets", "at most 2 elements"}},
        BadHeader{"missing_key",
                  R"({"a":{"dtype":"U8","data_offsets":[0,8]}})",
                  kEight,
                  {"a: missing key \"shape\""}},
        BadHeader{"extra_key",
                  R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"x":1}})",
                  kEight,
                  {"unexpected key \"x\""}},
        BadHeader{"metadata_not_string",
                  R"({"__metadata__":{"k":1}})",
                  "",
                  {"__metadata__.k", "expected a string, found the number 1"}},
        BadHeader{"dotted_name",
                  R"({"model.w":{"dtype":"U8","shape":[9],"data_offsets":[0,9]}})",
                  kEight,
                  {"[\"model.w\"].data_offsets"}}),
    [](const testing::TestParamInfo<BadHeader>& info) { return info.param.name; });

TEST(Safetensors, WriterRejectsBadTensors) {
  SafetensorsWriter writer;
  const std::vector<float> four(4);
  expect_error([&] { writer.add("w", TensorDtype::f32, {5}, bytes_of(four)); },
               {"\"w\"", "shape [5]", "needs 20 bytes, got 16"});
  writer.add("w", TensorDtype::f32, {4}, bytes_of(four));
  expect_error([&] { writer.add("w", TensorDtype::f32, {4}, bytes_of(four)); },
               {"\"w\" added twice"});
  expect_error([&] { writer.add("__metadata__", TensorDtype::f32, {4}, bytes_of(four)); },
               {"reserved"});
  expect_error([&] { writer.add("", TensorDtype::f32, {4}, bytes_of(four)); }, {"reserved"});
  expect_error([&] { writer.write("/nonexistent_dir_lt/x.safetensors"); },
               {"/nonexistent_dir_lt/x.safetensors", "cannot create"});
}

// The file the Python interoperability check (tests/check_safetensors.py) reads: every value is
// known to the script.
TEST(SafetensorsInterop, WritesTheSampleForPython) {
  const std::vector<float> f32{0, 1, 2, 3, 4, 5};
  const std::vector<std::int64_t> i64{-1, std::int64_t{1} << 40};
  const std::vector<std::uint16_t> bf16{0x3F80, 0xC000};  // 1.0, -2.0
  SafetensorsWriter writer;
  writer.add("model.f32", TensorDtype::f32, {2, 3}, bytes_of(f32));
  writer.add("model.i64", TensorDtype::i64, {2}, bytes_of(i64));
  writer.add("model.bf16", TensorDtype::bf16, {2}, bytes_of(bf16));
  writer.add("model.empty", TensorDtype::u8, {0}, std::span<const std::byte>());
  writer.set_metadata("format", "pt");
  const auto dir = std::filesystem::path(LT_BINARY_DIR) / "tests";
  std::filesystem::create_directories(dir);
  writer.write(dir / "checkpoint_sample.safetensors");
}

// ---------------------------------------------------------------------------------------------
// manifest

Manifest sample_manifest() {
  Manifest m;
  m.step = 1200;
  m.consumed_samples = std::numeric_limits<std::uint64_t>::max();
  m.layout = {2, 1, 2, 1, 4};
  m.lr_schedule = {{"lr", 3e-4}, {"min_lr", 3.0000000000000001e-5}, {"warmup", 20}};
  m.rng = {{"data", {1234, std::numeric_limits<std::uint64_t>::max()}}, {"empty", {}}};
  m.files = {{"rank_00000.safetensors", 1u << 20, 0xFFFFFFFFu}, {"rank_00001.safetensors", 0, 0}};
  TensorRecord w{"model.layers.0.self_attn.q_proj.weight", TensorDtype::bf16, {8, 4}, {}};
  w.shards.push_back({"rank_00000.safetensors", "q", {0, 0}, {4, 4}, ElementRange{0, 8}});
  w.shards.push_back({"rank_00001.safetensors", "q", {4, 0}, {4, 4}, std::nullopt});
  TensorRecord scalar{"step_scale", TensorDtype::f64, {}, {}};
  scalar.shards.push_back({"rank_00000.safetensors", "s", {}, {}, std::nullopt});
  m.tensors = {w, scalar};
  m.config_yaml = "model:\n  dim: 64 # \"quoted\" \\ back\tslash \x01 é\ntrain: {steps: 5}\n";
  return m;
}

void expect_same(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.consumed_samples, b.consumed_samples);
  EXPECT_EQ(a.layout.tp, b.layout.tp);
  EXPECT_EQ(a.layout.cp, b.layout.cp);
  EXPECT_EQ(a.layout.dp, b.layout.dp);
  EXPECT_EQ(a.layout.zero_stage, b.layout.zero_stage);
  EXPECT_EQ(a.layout.world_size, b.layout.world_size);
  EXPECT_EQ(a.lr_schedule, b.lr_schedule);  // bit-exact doubles
  EXPECT_EQ(a.rng, b.rng);
  ASSERT_EQ(a.files.size(), b.files.size());
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].name, b.files[i].name);
    EXPECT_EQ(a.files[i].bytes, b.files[i].bytes);
    EXPECT_EQ(a.files[i].crc32c, b.files[i].crc32c);
  }
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorRecord &x = a.tensors[i], &y = b.tensors[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(x.global_shape, y.global_shape);
    ASSERT_EQ(x.shards.size(), y.shards.size());
    for (std::size_t j = 0; j < x.shards.size(); ++j) {
      EXPECT_EQ(x.shards[j].file, y.shards[j].file);
      EXPECT_EQ(x.shards[j].key, y.shards[j].key);
      EXPECT_EQ(x.shards[j].offsets, y.shards[j].offsets);
      EXPECT_EQ(x.shards[j].shape, y.shards[j].shape);
      ASSERT_EQ(x.shards[j].elements.has_value(), y.shards[j].elements.has_value());
      if (x.shards[j].elements) {
        EXPECT_EQ(x.shards[j].elements->begin, y.shards[j].elements->begin);
        EXPECT_EQ(x.shards[j].elements->end, y.shards[j].elements->end);
      }
    }
  }
  EXPECT_EQ(a.config_yaml, b.config_yaml);
}

TEST(Manifest, RoundTripsEveryFieldExactly) {
  const Manifest m = sample_manifest();
  const std::string json = manifest_to_json(m);
  const Manifest back = parse_manifest(json, "manifest.json");
  expect_same(m, back);
  EXPECT_EQ(manifest_to_json(back), json) << "the writer is deterministic";
  EXPECT_NE(json.find("\"consumed_samples\": 18446744073709551615"), std::string::npos) << json;
  EXPECT_NE(back.find_tensor("step_scale"), nullptr);
  EXPECT_EQ(back.find_file("rank_00001.safetensors")->bytes, 0u);
  EXPECT_EQ(back.find_file("nope"), nullptr);

  ScratchDir dir("manifest");
  write_file(dir / "manifest.json", json);
  expect_same(m, read_manifest(dir / "manifest.json"));
}

TEST(Manifest, EmptyManifestRoundTrips) {
  const Manifest m;
  expect_same(m, parse_manifest(manifest_to_json(m), "m.json"));
}

TEST(Manifest, WriterRefusesWhatTheParserWouldReject) {
  Manifest m = sample_manifest();
  m.lr_schedule["lr"] = std::numeric_limits<double>::quiet_NaN();
  expect_error([&] { manifest_to_json(m); }, {"lr_schedule.lr", "finite"});
  m = sample_manifest();
  m.tensors[0].shards[0].file = "rank_00009.safetensors";
  expect_error([&] { manifest_to_json(m); },
               {"manifest being written", "tensors[0]", "shards[0].file",
                "\"rank_00009.safetensors\" is not in files"});
  m = sample_manifest();
  m.step = -1;
  expect_error([&] { manifest_to_json(m); }, {"step", "at least 0"});
}

struct BadManifest {
  std::string name;
  std::string from;  // replaced in the sample manifest's JSON
  std::string to;
  std::vector<std::string> message;
};

class ManifestRejects : public testing::TestWithParam<BadManifest> {};

TEST_P(ManifestRejects, WithAMessageNamingTheKey) {
  const BadManifest& c = GetParam();
  std::string json = manifest_to_json(sample_manifest());
  const std::size_t at = json.find(c.from);
  ASSERT_NE(at, std::string::npos) << c.from << " not in " << json;
  json.replace(at, c.from.size(), c.to);
  std::vector<std::string> parts{"ckpt/manifest.json"};
  parts.insert(parts.end(), c.message.begin(), c.message.end());
  expect_error([&] { parse_manifest(json, "ckpt/manifest.json"); }, parts);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ManifestRejects,
    testing::Values(
        BadManifest{"missing_step", "\"step\": 1200,", "", {"missing key \"step\""}},
        BadManifest{
            "unknown_key", "\"step\": 1200,", "\"stepp\": 1200,", {"unexpected key \"stepp\""}},
        BadManifest{"step_as_string",
                    "\"step\": 1200",
                    "\"step\": \"1200\"",
                    {"step", "expected an integer, found a string"}},
        BadManifest{"negative_step", "\"step\": 1200", "\"step\": -5", {"step", "at least 0"}},
        BadManifest{"negative_samples",
                    "\"consumed_samples\": 18446744073709551615",
                    "\"consumed_samples\": -1",
                    {"consumed_samples", "from 0"}},
        BadManifest{"samples_overflow",
                    "\"consumed_samples\": 18446744073709551615",
                    "\"consumed_samples\": 18446744073709551616",
                    {"consumed_samples"}},
        BadManifest{"wrong_format",
                    "\"longtrain-checkpoint\"",
                    "\"other\"",
                    {"format", "expected \"longtrain-checkpoint\""}},
        BadManifest{"newer_version",
                    "\"format_version\": 2",
                    "\"format_version\": 3",
                    {"format_version", "version 3, but this build reads versions 1 to 2"}},
        BadManifest{"older_version",
                    "\"format_version\": 2",
                    "\"format_version\": 0",
                    {"format_version", "version 0, but this build reads versions 1 to 2"}},
        BadManifest{"missing_checksum",
                    "\n  \"manifest_crc32c\"",
                    "\n  \"other\"",
                    {"unexpected key \"other\""}},
        BadManifest{"checksum_as_string",
                    "\"manifest_crc32c\": ",
                    "\"manifest_crc32c\": \"1\", \"x\": ",
                    {"unexpected key \"x\""}},
        BadManifest{
            "world_size", "\"world_size\": 4", "\"world_size\": 3", {"layout.world_size", "2·1·2"}},
        BadManifest{"zero_stage",
                    "\"zero_stage\": 1",
                    "\"zero_stage\": 4",
                    {"layout.zero_stage", "0 to 3"}},
        BadManifest{"tp_zero", "\"tp\": 2", "\"tp\": 0", {"layout.tp", "at least 1"}},
        BadManifest{"crc_too_big",
                    "\"crc32c\": 4294967295",
                    "\"crc32c\": 4294967296",
                    {"files[0].crc32c", "from 0 to 4294967295"}},
        BadManifest{"path_traversal",
                    "{\"name\": \"rank_00001.safetensors\"",
                    "{\"name\": \"../rank_00001.safetensors\"",
                    {"files[1].name", "not a plain file name"}},
        BadManifest{"absolute_path",
                    "{\"name\": \"rank_00001.safetensors\"",
                    "{\"name\": \"/etc/passwd\"",
                    {"files[1].name", "not a plain file name"}},
        BadManifest{"duplicate_file",
                    "{\"name\": \"rank_00001.safetensors\"",
                    "{\"name\": \"rank_00000.safetensors\"",
                    {"files[1].name", "listed twice"}},
        BadManifest{"unknown_dtype",
                    "\"dtype\": \"BF16\"",
                    "\"dtype\": \"BF17\"",
                    {"tensors[0].dtype", "unknown dtype \"BF17\""}},
        BadManifest{"shard_outside",
                    "\"offsets\": [4,0]",
                    "\"offsets\": [5,0]",
                    {"tensors[0] (\"model.layers.0.self_attn.q_proj.weight\").shards[1]",
                     "offset 5 + size 4 exceeds the global size 8"}},
        BadManifest{"shard_rank",
                    "\"offsets\": [4,0]",
                    "\"offsets\": [4]",
                    {"shards[1]", "must have the 2 dimensions of global_shape"}},
        BadManifest{"elements_range",
                    "\"elements\": [0,8]",
                    "\"elements\": [0,17]",
                    {"shards[0].elements", "[0, 17] is not a range within the slice's 16"}},
        BadManifest{"elements_reversed",
                    "\"elements\": [0,8]",
                    "\"elements\": [8,0]",
                    {"shards[0].elements"}},
        BadManifest{"elements_short",
                    "\"elements\": [0,8]",
                    "\"elements\": [0]",
                    {"shards[0].elements", "expected [begin, end]"}},
        BadManifest{"unknown_shard_file",
                    "\"file\": \"rank_00001.safetensors\"",
                    "\"file\": \"rank_00002.safetensors\"",
                    {"shards[1].file", "is not in files"}},
        BadManifest{"duplicate_tensor",
                    "\"name\": \"step_scale\"",
                    "\"name\": \"model.layers.0.self_attn.q_proj.weight\"",
                    {"tensors[1]", "listed twice"}},
        BadManifest{"no_shards",
                    "\"shards\": [{\"file\": \"rank_00000.safetensors\", \"key\": "
                    "\"s\", \"offsets\": [], \"shape\": []}]",
                    "\"shards\": []",
                    {"tensors[1]", "at least one shard"}},
        BadManifest{"lr_not_number",
                    "\"lr\": 0.0003",
                    "\"lr\": null",
                    {"lr_schedule.lr", "expected a number, found null"}},
        BadManifest{"lr_infinite", "\"lr\": 0.0003", "\"lr\": 1e999", {"lr_schedule.lr", "finite"}},
        BadManifest{"rng_not_array",
                    "\"data\": [1234,",
                    "\"data\": {\"a\": 1}, \"x\": [1234,",
                    {"rng.data", "expected an array, found an object"}},
        BadManifest{"duplicate_key",
                    "\"step\": 1200,",
                    "\"step\": 1200, \"step\": 1200,",
                    {"key \"step\" appears twice"}},
        BadManifest{"truncated", "\"tensors\"", "", {"malformed JSON"}},
        BadManifest{"name_not_string",
                    "\"name\": \"step_scale\"",
                    "\"name\": 7",
                    {"tensors[1].name", "expected a string, found the number 7"}}),
    [](const testing::TestParamInfo<BadManifest>& info) { return info.param.name; });

// A flipped byte that keeps the JSON valid and every field in range is caught by the checksum.
TEST(Manifest, ChecksumCatchesAChangeThatKeepsTheJsonValid) {
  const std::string json = manifest_to_json(sample_manifest());
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"\"step\": 1200", "\"step\": 1201"},
                                                        {"dim: 64", "dim: 65"},
                                                        {"\"tp\": 2", "\"tp\": 2 "}}) {
    std::string bad = json;
    const std::size_t at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << json;
    bad.replace(at, from.size(), to);
    expect_error([&] { parse_manifest(bad, "ckpt/manifest.json"); },
                 {"ckpt/manifest.json", "manifest_crc32c", "corrupt manifest"});
  }
}

// Version 1 manifests (no checksum) from earlier builds are still read, and written back as
// the current version.
TEST(Manifest, ReadsVersionOneWithoutAChecksum) {
  const Manifest m = sample_manifest();
  std::string json = manifest_to_json(m);
  const std::size_t marker = json.find(kManifestChecksumMarker);
  json.erase(marker, json.rfind("\n}\n") - marker);
  json.replace(json.find("\"format_version\": 2"), 19, "\"format_version\": 1");
  const Manifest old = parse_manifest(json, "old/manifest.json");
  EXPECT_EQ(old.format_version, 1);
  EXPECT_EQ(old.config_yaml, m.config_yaml);
  EXPECT_EQ(manifest_to_json(old), manifest_to_json(m));
}

TEST(Manifest, RejectsATruncatedOrOversizedFile) {
  ScratchDir dir("manifest_bad");
  const std::string json = manifest_to_json(sample_manifest());
  write_file(dir / "manifest.json", json.substr(0, json.size() / 2));
  expect_error([&] { read_manifest(dir / "manifest.json"); }, {"manifest.json", "malformed JSON"});
  expect_error([&] { read_manifest(dir / "none.json"); }, {"none.json", "No such file"});
}

}  // namespace
}  // namespace lt::ckpt
