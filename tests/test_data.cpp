// Data sources: purity of the sample stream, the structure of each synthetic task, file regions,
// document handling in token files, batching and config errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "trainer/config.h"
#include "trainer/data.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kSeed = 1234;

bool same(const Sample& a, const Sample& b) {
  return a.tokens == b.tokens && a.targets == b.targets && a.loss_mask == b.loss_mask &&
         a.doc_ids == b.doc_ids && a.positions == b.positions;
}

// Shape and the invariants every source shares: exact lengths, shifted targets, 0/1 mask,
// non-decreasing doc ids starting at 0.
void expect_well_formed(const Sample& s, std::int64_t seq_len, std::int64_t vocab) {
  const auto n = static_cast<std::size_t>(seq_len);
  ASSERT_EQ(s.tokens.size(), n);
  ASSERT_EQ(s.targets.size(), n);
  ASSERT_EQ(s.loss_mask.size(), n);
  ASSERT_EQ(s.doc_ids.size(), n);
  ASSERT_EQ(s.positions.size(), n);
  for (std::size_t t = 0; t < n; ++t) {
    if (t + 1 < n) {
      EXPECT_EQ(s.targets[t], s.tokens[t + 1]) << "t=" << t;
    }
    EXPECT_TRUE(s.loss_mask[t] == 0.0f || s.loss_mask[t] == 1.0f);
    EXPECT_GE(s.tokens[t], 0);
    EXPECT_LT(s.tokens[t], vocab);
    EXPECT_GE(s.targets[t], 0);
    EXPECT_LT(s.targets[t], vocab);
  }
  EXPECT_EQ(s.doc_ids[0], 0);
  EXPECT_TRUE(std::is_sorted(s.doc_ids.begin(), s.doc_ids.end()));
}

void expect_single_document(const Sample& s) {
  for (std::size_t t = 0; t < s.tokens.size(); ++t) {
    EXPECT_EQ(s.doc_ids[t], 0);
    EXPECT_EQ(s.positions[t], static_cast<std::int32_t>(t));
  }
}

// A file under the test temp dir, unique per process and call, removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::string& stem) {
    static std::atomic<int> counter{0};
    path_ = (fs::path(testing::TempDir()) / ("lt_data_" + std::to_string(::getpid()) + "_" +
                                             std::to_string(counter++) + "_" + stem))
                .string();
  }
  ~TempFile() {
    std::error_code ignored;
    fs::remove(path_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const std::string& bytes) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path_;
  }
  template <typename T>
  void write_tokens(const std::vector<T>& ids) const {
    std::string bytes;
    for (T id : ids) {  // little-endian regardless of the host
      for (std::size_t b = 0; b < sizeof(T); ++b) bytes.push_back(static_cast<char>(id >> (8 * b)));
    }
    write(bytes);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

DataConfig recall_config(std::int64_t seq_len = 128, std::int64_t pairs = 8,
                         std::int64_t queries = 16) {
  DataConfig c;
  c.source = "synthetic";
  c.task = "associative_recall";
  c.seq_len = seq_len;
  c.num_pairs = pairs;
  c.num_queries = queries;
  return c;
}

DataConfig passkey_config(std::int64_t seq_len = 256, double depth = 0.5, std::int64_t digits = 5) {
  DataConfig c;
  c.source = "synthetic";
  c.task = "passkey";
  c.seq_len = seq_len;
  c.passkey_depth = depth;
  c.passkey_digits = digits;
  return c;
}

DataConfig file_config(const std::string& source, const std::string& path, std::int64_t seq_len,
                       double eval_fraction) {
  DataConfig c;
  c.source = source;
  c.path = path;
  c.seq_len = seq_len;
  c.eval_fraction = eval_fraction;
  return c;
}

// Expects make_data_source to throw a ConfigError whose message holds every one of `parts`.
void expect_config_error(const DataConfig& c, const std::vector<std::string>& parts,
                         const std::string& config_dir = "") {
  try {
    make_data_source(c, kSeed, config_dir);
    ADD_FAILURE() << "no ConfigError; expected one mentioning " << parts.front();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

std::string to_text(const std::vector<std::int32_t>& tokens) {
  return std::string(tokens.begin(), tokens.end());
}

// ----------------------------------------------------------------------------------------------
// Purity: a sample depends only on (seed, split, index).

void expect_pure(const DataConfig& c) {
  const auto first = make_data_source(c, kSeed, "");
  const Sample reference = first->sample(Split::train, 7);

  const auto busy = make_data_source(c, kSeed, "");
  for (std::uint64_t i : {100u, 3u, 8u, 6u}) busy->sample(Split::train, i);
  busy->sample(Split::eval, 7);
  EXPECT_TRUE(same(busy->sample(Split::train, 7), reference));
  EXPECT_TRUE(same(first->sample(Split::train, 7), reference));  // asked again
  EXPECT_TRUE(same(make_data_source(c, kSeed, "")->sample(Split::train, 7), reference));

  // Every index has its own stream: a run of neighbours is pairwise distinct.
  std::vector<Sample> run;
  for (std::uint64_t i = 0; i < 16; ++i) run.push_back(first->sample(Split::train, i));
  for (std::size_t i = 0; i < run.size(); ++i) {
    for (std::size_t j = i + 1; j < run.size(); ++j) {
      EXPECT_FALSE(same(run[i], run[j])) << "samples " << i << " and " << j;
    }
  }
  EXPECT_FALSE(same(first->sample(Split::eval, 7), reference));
  EXPECT_FALSE(same(make_data_source(c, kSeed + 1, "")->sample(Split::train, 7), reference));
}

TEST(DataPurity, AssociativeRecall) {
  expect_pure(recall_config());
}
TEST(DataPurity, Passkey) {
  expect_pure(passkey_config());
}

TEST(DataPurity, TextAndTokens) {
  TempFile text("pure.txt");
  // Aperiodic content (an LCG), so distinct offsets give distinct windows.
  std::string bytes;
  std::uint32_t state = 12345;
  for (int i = 0; i < 100000; ++i) {
    state = state * 1664525u + 1013904223u;
    bytes.push_back(static_cast<char>('a' + (state >> 24) % 26));
  }
  text.write(bytes);
  expect_pure(file_config("text", text.path(), 32, 0.2));

  TempFile tokens("pure.u16");
  std::vector<std::uint16_t> ids(100000);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    ids[i] = static_cast<std::uint16_t>(state >> 16);
  }
  tokens.write_tokens(ids);
  expect_pure(file_config("tokens", tokens.path(), 32, 0.2));
}

// ----------------------------------------------------------------------------------------------
// Associative recall.

void check_recall_sample(const Sample& s, std::int64_t seq_len, std::int64_t pairs,
                         std::int64_t queries) {
  expect_well_formed(s, seq_len, 192);
  expect_single_document(s);
  // The kv block: keys distinct and in [64, 128), values in [128, 192), never scored.
  std::map<std::int32_t, std::int32_t> kv;
  for (std::int64_t i = 0; i < pairs; ++i) {
    const std::int32_t key = s.tokens[static_cast<std::size_t>(2 * i)];
    const std::int32_t value = s.tokens[static_cast<std::size_t>(2 * i + 1)];
    EXPECT_GE(key, 64);
    EXPECT_LT(key, 128);
    EXPECT_GE(value, 128);
    EXPECT_LT(value, 192);
    EXPECT_TRUE(kv.emplace(key, value).second) << "key " << key << " repeated";
    EXPECT_EQ(s.loss_mask[static_cast<std::size_t>(2 * i)], 0.0f);
    EXPECT_EQ(s.loss_mask[static_cast<std::size_t>(2 * i + 1)], 0.0f);
  }
  // After it: noise in [2, 64) except the query bigrams; the mask marks exactly the query keys.
  std::int64_t masked = 0;
  for (std::size_t t = static_cast<std::size_t>(2 * pairs); t < s.tokens.size(); ++t) {
    const std::int32_t token = s.tokens[t];
    const bool is_key = token >= 64 && token < 128;
    EXPECT_EQ(s.loss_mask[t], is_key ? 1.0f : 0.0f) << "t=" << t;
    if (is_key) {
      ++masked;
      ASSERT_TRUE(kv.contains(token)) << "query key " << token << " not in the kv block";
      EXPECT_EQ(s.targets[t], kv.at(token)) << "t=" << t;
    } else if (token >= 128) {
      ASSERT_GT(t, 0u);
      EXPECT_TRUE(s.tokens[t - 1] >= 64 && s.tokens[t - 1] < 128) << "value without key at " << t;
    } else {
      EXPECT_GE(token, 2);
    }
  }
  EXPECT_EQ(masked, queries);
}

TEST(AssociativeRecall, StructureAndRecallTargets) {
  for (const auto& [seq_len, pairs, queries] :
       std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{
           {128, 8, 16}, {64, 1, 1}, {256, 64, 64}, {33, 8, 9}, {1024, 16, 4}}) {
    SCOPED_TRACE("seq " + std::to_string(seq_len) + " pairs " + std::to_string(pairs) +
                 " queries " + std::to_string(queries));
    const auto source = make_data_source(recall_config(seq_len, pairs, queries), kSeed, "");
    EXPECT_EQ(source->min_vocab(), 192);
    EXPECT_EQ(source->seq_len(), seq_len);
    for (std::uint64_t i = 0; i < 50; ++i) {
      check_recall_sample(source->sample(i % 2 ? Split::eval : Split::train, i), seq_len, pairs,
                          queries);
    }
  }
}

TEST(AssociativeRecall, QueriesReachTheEndAndCoverAllKeys) {
  // The last query may sit at the very end (its value is the final target), and queries pick
  // every key in the block over many samples.
  const auto source = make_data_source(recall_config(40, 4, 4), kSeed, "");
  bool last_position_used = false;
  std::set<std::int64_t> key_slots;
  for (std::uint64_t i = 0; i < 400; ++i) {
    const Sample s = source->sample(Split::train, i);
    last_position_used |= s.loss_mask.back() == 1.0f;
    for (std::size_t t = 8; t < s.tokens.size(); ++t) {
      if (s.loss_mask[t] == 0.0f) continue;
      for (std::size_t k = 0; k < 4; ++k) {
        if (s.tokens[2 * k] == s.tokens[t]) key_slots.insert(static_cast<std::int64_t>(k));
      }
    }
  }
  EXPECT_TRUE(last_position_used);
  EXPECT_EQ(key_slots.size(), 4u);
}

TEST(AssociativeRecall, Describe) {
  EXPECT_EQ(make_data_source(recall_config(256, 8, 16), kSeed, "")->describe(),
            "associative recall: 8 pairs, 16 queries, seq 256, vocab 192");
}

// ----------------------------------------------------------------------------------------------
// Passkey.

constexpr const char* kNeedle = "The pass key is ";
constexpr const char* kQuestion = "What is the pass key? The pass key is ";

// Byte offset of the needle in the window (tokens + last target).
std::size_t check_passkey_sample(const Sample& s, std::int64_t seq_len, std::int64_t digits) {
  expect_well_formed(s, seq_len, 256);
  expect_single_document(s);
  std::vector<std::int32_t> window = s.tokens;
  window.push_back(s.targets.back());
  const std::string text = to_text(window);
  EXPECT_EQ(text.size(), static_cast<std::size_t>(seq_len + 1));

  const std::size_t needle = text.find(kNeedle);
  EXPECT_NE(needle, std::string::npos) << text;
  if (needle == std::string::npos) return needle;
  const std::string key = text.substr(needle + std::string(kNeedle).size(), digits);
  EXPECT_TRUE(std::all_of(key.begin(), key.end(), ::isdigit)) << key;
  EXPECT_NE(text.find(key + " is the pass key. "), std::string::npos) << text;

  // The window ends with the question and then the answer, which the last targets must be.
  const std::string ending = std::string(kQuestion) + key;
  EXPECT_EQ(text.substr(text.size() - ending.size()), ending) << text;
  const std::string answer = to_text({s.targets.end() - digits, s.targets.end()});
  EXPECT_EQ(answer, key);
  for (std::size_t t = 0; t < s.loss_mask.size(); ++t) {
    const bool scored = t + static_cast<std::size_t>(digits) >= s.loss_mask.size();
    EXPECT_EQ(s.loss_mask[t], scored ? 1.0f : 0.0f) << "t=" << t;
  }
  EXPECT_EQ(std::count(s.loss_mask.begin(), s.loss_mask.end(), 1.0f), digits);
  return needle;
}

TEST(Passkey, AnswerMatchesNeedle) {
  for (std::int64_t digits : {1, 5, 16}) {
    for (std::int64_t seq_len : {150, 512, 2000}) {
      SCOPED_TRACE("digits " + std::to_string(digits) + " seq " + std::to_string(seq_len));
      const auto source = make_data_source(passkey_config(seq_len, 0.3, digits), kSeed, "");
      EXPECT_EQ(source->min_vocab(), 256);
      std::set<std::string> keys;
      for (std::uint64_t i = 0; i < 20; ++i) {
        const Sample s = source->sample(Split::train, i);
        check_passkey_sample(s, seq_len, digits);
        keys.insert(to_text({s.targets.end() - digits, s.targets.end()}));
      }
      EXPECT_GT(keys.size(), digits == 1 ? 3u : 15u) << "the key should vary per sample";
    }
  }
}

TEST(Passkey, NeedleMovesWithDepth) {
  const std::int64_t seq_len = 1000;
  std::vector<std::size_t> offsets;
  for (double depth : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const Sample s =
        make_data_source(passkey_config(seq_len, depth), kSeed, "")->sample(Split::eval, 3);
    offsets.push_back(check_passkey_sample(s, seq_len, 5));
  }
  EXPECT_EQ(offsets.front(), 0u);
  EXPECT_TRUE(std::is_sorted(offsets.begin(), offsets.end()));
  EXPECT_LT(offsets[1], offsets[2]);
  EXPECT_LT(offsets[2], offsets[3]);
  // Depth 1: the needle (49 + 2*5 bytes) ends right where the question starts.
  const std::size_t question = seq_len + 1 - (std::string(kQuestion).size() + 5);
  EXPECT_EQ(offsets.back() + 49 + 2 * 5, question);
  // Depth 0.5 lands near the middle of the filler (snapped to a sentence boundary).
  const double filler = static_cast<double>(question - (49 + 2 * 5));
  EXPECT_NEAR(static_cast<double>(offsets[2]), filler / 2, 60.0);
}

TEST(Passkey, ShortestSequence) {
  // Needle (49 + 2d) + question (38 + d) = 102 bytes for 5 digits: seq_len 101 has no filler.
  const Sample s = make_data_source(passkey_config(101, 0.5), kSeed, "")->sample(Split::train, 0);
  EXPECT_EQ(check_passkey_sample(s, 101, 5), 0u);
  expect_config_error(passkey_config(100, 0.5), {"data.seq_len", "100", "101"});
}

// ----------------------------------------------------------------------------------------------
// Text files.

TEST(TextSource, WindowsStayInTheirRegion) {
  // 800 lowercase bytes of train, 200 uppercase of eval (eval_fraction 0.2).
  std::string bytes;
  for (int i = 0; i < 1000; ++i) {
    const int base = i < 800 ? 'a' : 'A';
    bytes.push_back(static_cast<char>(base + (i * 7 + i / 26) % 26));
  }
  TempFile file("regions.txt");
  file.write(bytes);
  const std::int64_t seq_len = 48;
  const auto source = make_data_source(file_config("text", file.path(), seq_len, 0.2), kSeed, "");
  EXPECT_EQ(source->min_vocab(), 256);
  const std::string train = bytes.substr(0, 800);
  const std::string eval = bytes.substr(800);
  for (std::uint64_t i = 0; i < 200; ++i) {
    for (Split split : {Split::train, Split::eval}) {
      const Sample s = source->sample(split, i);
      expect_well_formed(s, seq_len, 256);
      expect_single_document(s);
      EXPECT_EQ(std::count(s.loss_mask.begin(), s.loss_mask.end(), 1.0f), seq_len);
      std::vector<std::int32_t> window = s.tokens;
      window.push_back(s.targets.back());
      const std::string& region = split == Split::train ? train : eval;
      EXPECT_NE(region.find(to_text(window)), std::string::npos)
          << (split == Split::train ? "train" : "eval") << " sample " << i;
    }
  }
}

TEST(TextSource, OffsetsCoverTheWholeRegion) {
  // 40 distinct bytes, half for eval; seq 16 leaves offsets 0..3 (train) and 20..23 (eval).
  std::string bytes;
  for (int i = 0; i < 40; ++i) bytes.push_back(static_cast<char>(i));
  TempFile file("offsets.bin");
  file.write(bytes);
  const auto source = make_data_source(file_config("text", file.path(), 16, 0.5), kSeed, "");
  std::set<std::int32_t> train_starts;
  std::set<std::int32_t> eval_starts;
  int same_relative_offset = 0;
  for (std::uint64_t i = 0; i < 200; ++i) {
    const std::int32_t train = source->sample(Split::train, i).tokens[0];
    const std::int32_t eval = source->sample(Split::eval, i).tokens[0];
    train_starts.insert(train);
    eval_starts.insert(eval);
    same_relative_offset += eval - 20 == train;
  }
  EXPECT_EQ(train_starts, (std::set<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(eval_starts, (std::set<std::int32_t>{20, 21, 22, 23}));
  // Train and eval draw from independent streams: offsets agree about 1 time in 4, not always.
  EXPECT_LT(same_relative_offset, 100);
}

TEST(TextSource, RelativePathUsesConfigDir) {
  TempFile file("relative.txt");
  file.write(std::string(300, 'x'));
  const fs::path path(file.path());
  const auto c = file_config("text", path.filename().string(), 16, 0.5);
  const auto source = make_data_source(c, kSeed, path.parent_path().string());
  EXPECT_EQ(source->sample(Split::train, 0).tokens[0], 'x');
  EXPECT_NE(source->describe().find(file.path()), std::string::npos) << source->describe();
}

TEST(TextSource, TinyShakespeare) {
  const std::string path = LT_SOURCE_DIR "/../shared/data/tinyshakespeare.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present";
  std::ifstream in(path, std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto source = make_data_source(file_config("text", path, 256, 0.1), kSeed, "");
  const std::size_t train_end =
      all.size() - static_cast<std::size_t>(std::llround(all.size() * 0.1));
  const std::string train = all.substr(0, train_end);
  for (std::uint64_t i = 0; i < 20; ++i) {
    const Sample s = source->sample(Split::train, i);
    expect_well_formed(s, 256, 256);
    std::vector<std::int32_t> window = s.tokens;
    window.push_back(s.targets.back());
    // Window content is a substring of the train region (verified by search at its offset).
    const std::string text = to_text(window);
    EXPECT_NE(train.find(text), std::string::npos);
  }
}

// ----------------------------------------------------------------------------------------------
// Token files.

// File tokens [5 6 E 7 8 9 E E 10 11 | 20 .. 29] with E the EOD and eval_fraction 0.5: seq 9
// leaves the train split exactly one window, at offset 0.
template <typename T>
std::vector<T> document_tokens(T eod, T shift, T big) {
  std::vector<T> ids = {5, 6, eod, 7, 8, 9, eod, eod, 10, 11};
  for (T& id : ids) id = id == eod ? eod : static_cast<T>(id + shift);
  for (T i = 0; i < 10; ++i) ids.push_back(static_cast<T>(20 + shift + i));
  ids.back() = big;  // the largest id sits in the eval tail: min_vocab must scan it all
  return ids;
}

template <typename T>
void check_documents(const std::string& dtype, T eod, T shift, T big) {
  TempFile file("docs." + dtype);
  file.write_tokens(document_tokens<T>(eod, shift, big));
  DataConfig c = file_config("tokens", file.path(), 9, 0.5);
  c.token_dtype = dtype;
  c.eod_token = eod;
  const auto source = make_data_source(c, kSeed, "");
  EXPECT_EQ(source->min_vocab(), std::int64_t{big} + 1);

  const Sample s = source->sample(Split::train, 5);
  expect_well_formed(s, 9, source->min_vocab());
  const auto w = [&](std::int32_t id) { return id + static_cast<std::int32_t>(shift); };
  const std::int32_t e = eod;
  EXPECT_EQ(s.tokens, (std::vector<std::int32_t>{w(5), w(6), e, w(7), w(8), w(9), e, e, w(10)}));
  EXPECT_EQ(s.targets, (std::vector<std::int32_t>{w(6), e, w(7), w(8), w(9), e, e, w(10), w(11)}));
  EXPECT_EQ(s.doc_ids, (std::vector<std::int32_t>{0, 0, 0, 1, 1, 1, 1, 2, 3}));
  EXPECT_EQ(s.loss_mask, (std::vector<float>{1, 1, 0, 1, 1, 1, 0, 0, 1}));
  EXPECT_EQ(s.positions, (std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));

  c.reset_positions = true;
  const Sample r = make_data_source(c, kSeed, "")->sample(Split::train, 11);
  EXPECT_EQ(r.positions, (std::vector<std::int32_t>{0, 1, 2, 0, 1, 2, 3, 0, 0}));
  EXPECT_EQ(r.doc_ids, s.doc_ids);

  // Without an EOD id the file is one stream: every token scored, one document.
  c.eod_token = -1;
  const Sample plain = make_data_source(c, kSeed, "")->sample(Split::train, 0);
  EXPECT_EQ(plain.tokens, s.tokens);
  EXPECT_EQ(std::count(plain.loss_mask.begin(), plain.loss_mask.end(), 1.0f), 9);
  expect_single_document(plain);
}

TEST(TokensSource, Uint16Documents) {
  check_documents<std::uint16_t>("uint16", 0, 0, 65535);
}

TEST(TokensSource, Uint32Documents) {
  // Ids above 2^16 prove all four bytes are read, little-endian.
  check_documents<std::uint32_t>("uint32", 100000, 70000, 1 << 24 | 0x010203);
}

TEST(TokensSource, RandomWindowsMatchTheFile) {
  std::vector<std::uint32_t> ids(3000);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = i % 17 == 16 ? 3u : static_cast<std::uint32_t>(1000 + i * 7 % 2000);
  }
  TempFile file("random.u32");
  file.write_tokens(ids);
  DataConfig c = file_config("tokens", file.path(), 40, 0.1);
  c.token_dtype = "uint32";
  c.eod_token = 3;
  c.reset_positions = true;
  const auto source = make_data_source(c, kSeed, "");
  const std::size_t train_end = 2700;
  for (std::uint64_t i = 0; i < 100; ++i) {
    for (Split split : {Split::train, Split::eval}) {
      const Sample s = source->sample(split, i);
      expect_well_formed(s, 40, source->min_vocab());
      const auto begin = split == Split::train ? ids.begin() : ids.begin() + train_end;
      const auto end = split == Split::train ? ids.begin() + train_end : ids.end();
      std::vector<std::uint32_t> window(s.tokens.begin(), s.tokens.end());
      window.push_back(static_cast<std::uint32_t>(s.targets.back()));
      EXPECT_NE(std::search(begin, end, window.begin(), window.end()), end) << "sample " << i;
      for (std::size_t t = 0; t < 40; ++t) {
        EXPECT_EQ(s.loss_mask[t], s.tokens[t] == 3 ? 0.0f : 1.0f);
        if (t > 0) {
          const bool new_doc = s.tokens[t - 1] == 3;
          EXPECT_EQ(s.doc_ids[t], s.doc_ids[t - 1] + (new_doc ? 1 : 0));
          EXPECT_EQ(s.positions[t], new_doc ? 0 : s.positions[t - 1] + 1);
        }
      }
    }
  }
}

TEST(TokensSource, Errors) {
  TempFile odd("odd.u16");
  odd.write(std::string(2001, '\1'));
  DataConfig c = file_config("tokens", odd.path(), 16, 0.1);
  expect_config_error(c, {"data.path", odd.path(), "2001", "multiple of 2", "uint16"});
  TempFile six("six.u32");
  six.write(std::string(4002, '\1'));
  c = file_config("tokens", six.path(), 16, 0.1);
  c.token_dtype = "uint32";
  expect_config_error(c, {"4002", "multiple of 4"});

  const std::string missing = (fs::path(testing::TempDir()) / "lt_data_no_such_file.bin").string();
  expect_config_error(file_config("tokens", missing, 16, 0.1),
                      {"data.path", "cannot open", "'" + missing + "'", "No such file"});
  // Relative paths are resolved before opening, and the message shows the resolved path.
  expect_config_error(file_config("tokens", "nope.bin", 16, 0.1), {"'/no/such/dir/nope.bin'"},
                      "/no/such/dir");

  c = file_config("tokens", six.path(), 16, 0.1);
  c.token_dtype = "int8";
  expect_config_error(c, {"data.token_dtype", "int8", "uint16", "uint32"});
  c.token_dtype = "uint16";
  c.eod_token = 70000;
  expect_config_error(c, {"data.eod_token", "70000", "65535"});

  // 100 tokens with eval_fraction 0.1 give 10 for eval: too few for seq 16.
  TempFile small("small.u16");
  small.write(std::string(200, '\0'));
  expect_config_error(file_config("tokens", small.path(), 16, 0.1),
                      {small.path(), "100 tokens", "90", "10", "seq_len + 1 = 17"});
}

// ----------------------------------------------------------------------------------------------
// Batches.

TEST(MakeBatch, StacksConsecutiveSamples) {
  const auto source = make_data_source(recall_config(64, 4, 5), kSeed, "");
  const Batch b = make_batch(*source, Split::eval, 10, 3);
  EXPECT_EQ(b.batch, 3);
  EXPECT_EQ(b.seq_len, 64);
  EXPECT_EQ(b.num_tokens(), 192);
  ASSERT_EQ(b.tokens.size(), 192u);
  ASSERT_EQ(b.loss_mask.size(), 192u);
  for (std::size_t row = 0; row < 3; ++row) {
    const Sample s = source->sample(Split::eval, 10 + row);
    const auto slice = [&](const auto& v) {
      return std::vector(v.begin() + row * 64, v.begin() + (row + 1) * 64);
    };
    EXPECT_EQ(slice(b.tokens), s.tokens);
    EXPECT_EQ(slice(b.targets), s.targets);
    EXPECT_EQ(slice(b.loss_mask), s.loss_mask);
    EXPECT_EQ(slice(b.doc_ids), s.doc_ids);
    EXPECT_EQ(slice(b.positions), s.positions);
  }
  EXPECT_EQ(b.loss_tokens(), 3 * 5);

  const Batch empty = make_batch(*source, Split::train, 0, 0);
  EXPECT_EQ(empty.num_tokens(), 0);
  EXPECT_EQ(empty.loss_tokens(), 0);
  EXPECT_TRUE(empty.tokens.empty());
}

TEST(MakeBatch, LossTokensCountsNonZeroWeights) {
  Batch b;
  b.batch = 1;
  b.seq_len = 5;
  b.loss_mask = {1.0f, 0.0f, 1.0f, 0.0f, 0.5f};
  EXPECT_EQ(b.loss_tokens(), 3);
  const auto source = make_data_source(passkey_config(200, 0.5, 7), kSeed, "");
  EXPECT_EQ(make_batch(*source, Split::train, 0, 4).loss_tokens(), 4 * 7);
}

// ----------------------------------------------------------------------------------------------
// Config errors.

TEST(DataConfigErrors, SourceAndTask) {
  DataConfig c;
  c.source = "parquet";
  expect_config_error(c, {"data.source", "parquet", "synthetic", "text", "tokens"});
  c = DataConfig{};
  c.task = "copying";
  expect_config_error(c, {"data.task", "copying", "associative_recall", "passkey"});
  c = DataConfig{};
  c.seq_len = 0;
  expect_config_error(c, {"data.seq_len", "0"});
}

TEST(DataConfigErrors, AssociativeRecall) {
  expect_config_error(recall_config(128, 0, 4), {"data.num_pairs", "0", "[1, 64]"});
  expect_config_error(recall_config(256, 65, 4), {"data.num_pairs", "65"});
  expect_config_error(recall_config(128, 8, 0), {"data.num_queries", "0"});
  // 2*8 + 2*9 = 34 tokens need seq_len >= 33.
  expect_config_error(recall_config(32, 8, 9),
                      {"data.seq_len", "32", "data.num_pairs 8", "data.num_queries 9", "34"});
  EXPECT_NO_THROW(make_data_source(recall_config(33, 8, 9), kSeed, ""));
}

TEST(DataConfigErrors, Passkey) {
  expect_config_error(passkey_config(256, 0.5, 0), {"data.passkey_digits", "0", "[1, 16]"});
  expect_config_error(passkey_config(256, 0.5, 17), {"data.passkey_digits", "17"});
  expect_config_error(passkey_config(256, -0.1), {"data.passkey_depth", "-0.1"});
  expect_config_error(passkey_config(256, 1.5), {"data.passkey_depth", "1.5"});
  expect_config_error(passkey_config(64, 0.5), {"data.seq_len", "64", "101"});
}

TEST(DataConfigErrors, Text) {
  DataConfig c = file_config("text", "", 16, 0.1);
  expect_config_error(c, {"data.path", "required"});

  const std::string missing = (fs::path(testing::TempDir()) / "lt_data_missing.txt").string();
  expect_config_error(file_config("text", missing, 16, 0.1),
                      {"data.path: cannot open '" + missing + "'", "No such file"});
  expect_config_error(file_config("text", testing::TempDir(), 16, 0.1),
                      {"cannot open", "Is a directory"});

  TempFile small("small.txt");
  small.write(std::string(100, 'a'));
  expect_config_error(file_config("text", small.path(), 16, 0.1),
                      {small.path(), "100 bytes", "seq_len + 1 = 17"});
  for (double fraction : {0.0, 1.0, -0.5}) {
    expect_config_error(file_config("text", small.path(), 16, fraction), {"data.eval_fraction"});
  }
  TempFile empty("empty.txt");
  empty.write("");
  expect_config_error(file_config("text", empty.path(), 16, 0.1), {"0 bytes"});
}

}  // namespace
}  // namespace lt
