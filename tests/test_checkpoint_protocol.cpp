// The checkpoint directory protocol: save and commit, `latest`, pruning, and choosing the
// checkpoint to resume from when the newest is torn, truncated or corrupt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint_test_util.h"

namespace lt::ckpt {
namespace {

namespace fs = std::filesystem;
using test::bytes_of;
using test::expect_error;
using test::read_file;
using test::ScratchDir;
using test::write_file;

constexpr int kRanks = 2;

// Saves step `step` the way the trainer will: every rank writes its half of a [4, 6] weight
// (a tp row slice) and a ZeRO-style flat range of a [5] bias, then rank 0 commits.
Manifest save_checkpoint(const fs::path& root, std::int64_t step) {
  begin_save(root, step);
  Manifest m;
  m.step = step;
  m.consumed_samples = static_cast<std::uint64_t>(step) * 16;
  m.layout = {kRanks, 1, 1, 0, kRanks};
  m.lr_schedule = {{"lr", 1e-3}};
  m.rng = {{"data", {7, static_cast<std::uint64_t>(step)}}};
  m.config_yaml = "train: {steps: 10}\n";
  TensorRecord weight{"w", TensorDtype::f32, {4, 6}, {}};
  TensorRecord bias{"b", TensorDtype::f32, {5}, {}};
  for (int rank = 0; rank < kRanks; ++rank) {
    const std::string name = rank_file_name(rank);
    std::vector<float> w(12), b(rank == 0 ? 3 : 2);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(step + rank * 12 + i);
    SafetensorsWriter writer;
    writer.add("w", TensorDtype::f32, {2, 6}, bytes_of(w));
    writer.add("b", TensorDtype::f32, {b.size()}, bytes_of(b));
    const WrittenFile written = writer.write(file_path(root, step, name));
    m.files.push_back({name, written.bytes, written.crc32c});
    weight.shards.push_back(
        {name, "w", {static_cast<std::uint64_t>(2 * rank), 0}, {2, 6}, std::nullopt});
    bias.shards.push_back(
        {name, "b", {0}, {5}, rank == 0 ? ElementRange{0, 3} : ElementRange{3, 5}});
  }
  m.tensors = {weight, bias};
  commit_save(root, step, m);
  return m;
}

struct Warnings {
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& line) { lines.push_back(line); };
  }
};

fs::path shard_of(const fs::path& root, std::int64_t step, int rank) {
  return step_dir(root, step) / rank_file_name(rank);
}

// find_latest_valid picks `expected` after exactly one warning that names every one of `parts`.
void expect_skips_newest(const fs::path& root, std::int64_t expected,
                         std::initializer_list<std::string> parts) {
  Warnings warnings;
  const auto found = find_latest_valid(root, warnings.sink());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->dir, step_dir(root, expected));
  EXPECT_EQ(found->manifest.step, expected);
  ASSERT_EQ(warnings.lines.size(), 1u);
  for (const std::string& part : parts)
    EXPECT_NE(warnings.lines[0].find(part), std::string::npos)
        << "warning lacks '" << part << "': " << warnings.lines[0];
}

TEST(CheckpointNames, StepDirectoriesAndRankFiles) {
  EXPECT_EQ(step_dir_name(1234), "step_00001234");
  EXPECT_EQ(step_dir_name(0), "step_00000000");
  EXPECT_EQ(step_dir_name(123456789), "step_123456789");
  EXPECT_EQ(parse_step_dir_name("step_00001234"), 1234);
  EXPECT_EQ(parse_step_dir_name("step_123456789"), 123456789);
  for (const char* bad : {"step_1234", "step_00001234.tmp", "step_-0000001", "step_+0000001",
                          "step_0000123a", "Step_00001234", "step_", "latest"})
    EXPECT_FALSE(parse_step_dir_name(bad).has_value()) << bad;
  EXPECT_EQ(rank_file_name(3), "rank_00003.safetensors");
  expect_error([] { step_dir_name(-1); }, {"step -1 is negative"});
  expect_error([] { file_path("/ckpt", 1, "../escape"); }, {"\"../escape\"", "plain file name"});
  EXPECT_EQ(file_path("/ckpt", 5, "rank_00000.safetensors"),
            fs::path("/ckpt/step_00000005.tmp/rank_00000.safetensors"));
}

TEST(CheckpointSave, TwoSavesAndLatestNamesTheNewest) {
  ScratchDir root("two_saves");
  const Manifest first = save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  EXPECT_EQ(read_file(root / "latest"), "step_00000200\n");
  EXPECT_EQ(list_steps(root.path()), (std::vector<std::int64_t>{100, 200}));
  EXPECT_FALSE(fs::exists(tmp_dir(root.path(), 200)));
  EXPECT_FALSE(fs::exists(root / "latest.tmp"));

  const VerifyResult older = verify(step_dir(root.path(), 100));
  ASSERT_TRUE(older) << older.problem;
  EXPECT_EQ(older.manifest->consumed_samples, first.consumed_samples);
  EXPECT_EQ(older.manifest->files[1].crc32c, first.files[1].crc32c);

  Warnings warnings;
  const auto found = find_latest_valid(root.path(), warnings.sink());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->dir, step_dir(root.path(), 200));
  EXPECT_TRUE(warnings.lines.empty());

  // What the trainer reads back: rank 1's slice of w through the manifest.
  const ShardRecord& shard = found->manifest.find_tensor("w")->shards[1];
  const SafetensorsReader reader(found->dir / shard.file);
  std::vector<float> row(6);
  reader.read(shard.key, 6 * sizeof(float), std::as_writable_bytes(std::span(row)));
  EXPECT_EQ(row[0], 200.0f + 12 + 6);
}

TEST(CheckpointResume, SkipsATruncatedShard) {
  ScratchDir root("truncated");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  const fs::path shard = shard_of(root.path(), 200, 1);
  fs::resize_file(shard, fs::file_size(shard) - 10);
  expect_skips_newest(root.path(), 100,
                      {"skipping checkpoint", "step_00000200/rank_00001.safetensors",
                       "bytes, the manifest lists", "truncated"});
}

TEST(CheckpointResume, SkipsAFlippedByte) {
  ScratchDir root("flipped");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  const fs::path shard = shard_of(root.path(), 200, 0);
  std::string bytes = read_file(shard);
  bytes[bytes.size() - 5] ^= 0x10;  // inside the data, so the header still parses
  write_file(shard, bytes);
  expect_skips_newest(root.path(), 100,
                      {"step_00000200/rank_00000.safetensors", "CRC32C", "corrupt"});
}

TEST(CheckpointResume, SkipsADeletedManifest) {
  ScratchDir root("no_manifest");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  fs::remove(step_dir(root.path(), 200) / "manifest.json");
  expect_skips_newest(root.path(), 100, {"step_00000200/manifest.json", "missing"});
}

TEST(CheckpointResume, SkipsAnUnparseableManifest) {
  ScratchDir root("bad_manifest");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  const fs::path manifest = step_dir(root.path(), 200) / "manifest.json";
  const std::string json = read_file(manifest);
  write_file(manifest, json.substr(0, json.size() / 2));
  expect_skips_newest(root.path(), 100, {"step_00000200/manifest.json", "malformed JSON"});
}

// Saves step 200 as one file holding only "w" (F32), under the manifest `m` describes.
void save_mismatched(const fs::path& root, Manifest m) {
  begin_save(root, 200);
  SafetensorsWriter writer;
  const std::vector<float> w(12);
  writer.add("w", TensorDtype::f32, {2, 6}, bytes_of(w));
  const WrittenFile written = writer.write(file_path(root, 200, "rank_00000.safetensors"));
  m.step = 200;
  m.files = {{"rank_00000.safetensors", written.bytes, written.crc32c}};
  commit_save(root, 200, m);
}

TEST(CheckpointResume, SkipsAFileWhoseHeaderDisagreesWithTheManifest) {
  ScratchDir root("wrong_shard");
  save_checkpoint(root.path(), 100);
  const ShardRecord whole_w{"rank_00000.safetensors", "w", {0, 0}, {2, 6}, std::nullopt};
  Manifest m;
  m.tensors = {{"w", TensorDtype::bf16, {2, 6}, {whole_w}}};
  save_mismatched(root.path(), m);
  expect_skips_newest(
      root.path(), 100,
      {"step_00000200/rank_00000.safetensors", "\"w\"", "dtype F32", "the manifest says BF16"});
  // A second commit of step 200 replaces the damaged directory.
  m.tensors = {
      {"w", TensorDtype::f32, {2, 6}, {whole_w}},
      {"b", TensorDtype::f32, {5}, {{"rank_00000.safetensors", "b", {0}, {5}, std::nullopt}}}};
  save_mismatched(root.path(), m);
  expect_skips_newest(root.path(), 100,
                      {"rank_00000.safetensors", "\"b\"", "listed in the manifest but not in"});
  m.tensors.pop_back();
  save_mismatched(root.path(), m);
  Warnings warnings;
  EXPECT_EQ(find_latest_valid(root.path(), warnings.sink())->manifest.step, 200);
  EXPECT_TRUE(warnings.lines.empty());
  EXPECT_FALSE(fs::exists(tmp_dir(root.path(), 200)));
}

TEST(CheckpointResume, ReportsEveryDamagedCheckpointAndFindsNoneWhenAllAre) {
  ScratchDir root("all_bad");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  fs::remove(step_dir(root.path(), 100) / "manifest.json");
  fs::remove(shard_of(root.path(), 200, 0));
  Warnings warnings;
  EXPECT_FALSE(find_latest_valid(root.path(), warnings.sink()).has_value());
  ASSERT_EQ(warnings.lines.size(), 2u);
  EXPECT_NE(warnings.lines[0].find("step_00000200/rank_00000.safetensors"), std::string::npos)
      << warnings.lines[0];
  EXPECT_NE(warnings.lines[1].find("step_00000100/manifest.json"), std::string::npos)
      << warnings.lines[1];
  EXPECT_FALSE(find_latest_valid(root / "does_not_exist", warnings.sink()).has_value());
}

TEST(CheckpointResume, IgnoresLeftoverTmpDirectories) {
  ScratchDir root("leftover_tmp");
  save_checkpoint(root.path(), 100);
  begin_save(root.path(), 200);  // a save that crashed before its commit
  write_file(file_path(root.path(), 200, "rank_00000.safetensors"), "torn");
  Warnings warnings;
  const auto found = find_latest_valid(root.path(), warnings.sink());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->manifest.step, 100);
  EXPECT_TRUE(warnings.lines.empty());
  EXPECT_EQ(list_steps(root.path()), (std::vector<std::int64_t>{100}));
}

TEST(CheckpointResume, PrefersANewerCompleteCheckpointOverAStaleLatest) {
  ScratchDir root("stale_latest");
  save_checkpoint(root.path(), 100);
  save_checkpoint(root.path(), 200);
  // A crash between the rename of step_00000200 and the update of `latest`.
  write_file(root / "latest", "step_00000100\n");
  Warnings warnings;
  EXPECT_EQ(find_latest_valid(root.path(), warnings.sink())->manifest.step, 200);
  EXPECT_TRUE(warnings.lines.empty());
  write_file(root / "latest", "step_00000300\n");
  EXPECT_EQ(find_latest_valid(root.path(), warnings.sink())->manifest.step, 200);
  ASSERT_EQ(warnings.lines.size(), 1u);
  EXPECT_NE(warnings.lines[0].find("names step_00000300, which does not exist"), std::string::npos)
      << warnings.lines[0];
}

TEST(CheckpointSave, CommitRefusesAMissingFileOrAnotherStep) {
  ScratchDir root("commit_refuses");
  begin_save(root.path(), 100);
  Manifest m;
  m.step = 100;
  m.files = {{"rank_00000.safetensors", 10, 0}};
  expect_error([&] { commit_save(root.path(), 100, m); },
               {"step_00000100.tmp/rank_00000.safetensors", "cannot commit"});
  write_file(file_path(root.path(), 100, "rank_00000.safetensors"), "short");
  expect_error([&] { commit_save(root.path(), 100, m); },
               {"rank_00000.safetensors", "has 5 bytes, the manifest lists 10"});
  expect_error([&] { commit_save(root.path(), 101, m); }, {"step_00000101", "says step 100"});
  EXPECT_TRUE(list_steps(root.path()).empty());
  EXPECT_FALSE(fs::exists(root / "latest"));
}

TEST(CheckpointSave, BeginSaveReplacesAStaleTmpDirectory) {
  ScratchDir root("stale_tmp");
  const fs::path tmp = begin_save(root.path(), 100);
  write_file(tmp / "old_file", "x");
  EXPECT_EQ(begin_save(root.path(), 100), tmp);
  EXPECT_TRUE(fs::is_empty(tmp));
}

TEST(CheckpointPrune, KeepsTheNewestKAndNeverTheNewest) {
  ScratchDir root("prune");
  for (const std::int64_t step : {100, 200, 300, 400, 500}) save_checkpoint(root.path(), step);
  fs::remove(step_dir(root.path(), 300) / "manifest.json");  // damaged: neither counted nor removed
  begin_save(root.path(), 250);                              // leftover of a crashed save
  begin_save(root.path(), 600);                              // a save in progress
  const std::vector<fs::path> removed = prune(root.path(), 2);
  EXPECT_EQ(removed.size(), 3u);
  EXPECT_EQ(list_steps(root.path()), (std::vector<std::int64_t>{300, 400, 500}));
  EXPECT_FALSE(fs::exists(tmp_dir(root.path(), 250)));
  EXPECT_TRUE(fs::exists(tmp_dir(root.path(), 600)));

  prune(root.path(), 1);
  EXPECT_EQ(list_steps(root.path()), (std::vector<std::int64_t>{300, 500}));
  EXPECT_TRUE(verify(step_dir(root.path(), 500)));
  EXPECT_EQ(read_file(root / "latest"), "step_00000500\n");
  expect_error([&] { prune(root.path(), 0); }, {"at least 1", "asked for 0"});
  EXPECT_TRUE(prune(root / "missing", 3).empty());
}

TEST(CheckpointVerify, ChecksTheDirectoryName) {
  ScratchDir root("verify_name");
  save_checkpoint(root.path(), 100);
  fs::rename(step_dir(root.path(), 100), step_dir(root.path(), 101));
  const VerifyResult r = verify(step_dir(root.path(), 101));
  EXPECT_FALSE(r);
  EXPECT_NE(r.problem.find("the manifest says 100, the directory is step_00000101"),
            std::string::npos)
      << r.problem;
  EXPECT_NE(verify(root / "elsewhere").problem.find("not a checkpoint directory"),
            std::string::npos);
}

}  // namespace
}  // namespace lt::ckpt
