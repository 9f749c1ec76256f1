#include "checkpoint/verify.h"

#include <fmt/format.h>

#include <map>
#include <vector>

#include "checkpoint/crc32c.h"
#include "checkpoint/directory.h"
#include "checkpoint/error.h"
#include "checkpoint/json_writer.h"
#include "checkpoint/posix_file.h"
#include "checkpoint/safetensors_reader.h"
#include "checkpoint/shape.h"

namespace lt::ckpt {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t kReadPieceBytes = std::size_t{8} << 20;
constexpr std::uint64_t kMaxLatestBytes = 4096;

[[noreturn]] void fail(const fs::path& path, std::string_view problem) {
  throw CheckpointError(fmt::format("{}: {}", path.string(), problem));
}

std::int64_t directory_step(const fs::path& dir) {
  const fs::path name = dir.has_filename() ? dir.filename() : dir.parent_path().filename();
  const auto step = parse_step_dir_name(name.string());
  if (!step) fail(dir, "not a checkpoint directory (expected a name like step_00000100)");
  return *step;
}

Manifest read_own_manifest(const fs::path& dir) {
  const std::int64_t step = directory_step(dir);
  const fs::path path = dir / kManifestFileName;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "missing (the checkpoint is incomplete)");
  Manifest m = read_manifest(path);
  if (m.step != step)
    fail(path, fmt::format("step: the manifest says {}, the directory is {}", m.step,
                           step_dir_name(step)));
  return m;
}

void check_size(const fs::path& path, std::uint64_t expected) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) fail(path, fmt::format("listed in the manifest but unreadable: {}", ec.message()));
  if (size != expected)
    fail(path, fmt::format("{} bytes, the manifest lists {}{}", size, expected,
                           size < expected ? " (truncated)" : ""));
}

void check_crc(const fs::path& path, std::uint32_t expected) {
  const std::uint32_t crc = file_crc32c(path);
  if (crc != expected)
    fail(path,
         fmt::format("CRC32C {:#010x}, the manifest lists {:#010x} (corrupt data)", crc, expected));
}

struct ShardRef {
  const TensorRecord* tensor;
  const ShardRecord* shard;
};

// The entry holding `ref` has the tensor's dtype and exactly the shard's elements.
void check_shard(const SafetensorsReader& file, const ShardRef& ref) {
  const ShardRecord& s = *ref.shard;
  const std::string what =
      fmt::format("tensor {} (shard of {})", json_string(s.key), json_string(ref.tensor->name));
  const TensorEntry* e = file.header().find(s.key);
  if (!e) fail(file.path(), what + ": listed in the manifest but not in the file");
  if (e->dtype != ref.tensor->dtype)
    fail(file.path(), fmt::format("{}: dtype {}, the manifest says {}", what, dtype_name(e->dtype),
                                  dtype_name(ref.tensor->dtype)));
  // Validation bounded the shard by its global tensor, but that may still exceed 2^64
  // elements, which no file can hold.
  const std::optional<std::uint64_t> expected =
      s.elements ? s.elements->end - s.elements->begin : element_count(s.shape);
  if (e->elements() != expected)
    fail(file.path(),
         fmt::format("{}: {} elements, the manifest's shard has {}", what, e->elements(),
                     expected ? fmt::format("{}", *expected) : "more than 2^64"));
}

void check_shards(const fs::path& dir, const Manifest& m) {
  std::map<std::string_view, std::vector<ShardRef>> by_file;
  for (const TensorRecord& t : m.tensors)
    for (const ShardRecord& s : t.shards) by_file[s.file].push_back({&t, &s});
  for (const auto& [name, refs] : by_file) {
    const SafetensorsReader file(dir / name);
    for (const ShardRef& ref : refs) check_shard(file, ref);
  }
}

Manifest verify_or_throw(const fs::path& dir) {
  Manifest m = read_own_manifest(dir);
  for (const FileRecord& f : m.files) check_size(dir / f.name, f.bytes);
  for (const FileRecord& f : m.files) check_crc(dir / f.name, f.crc32c);
  check_shards(dir, m);
  return m;
}

// Reports a `latest` that does not name one of `steps`; it is a pointer for people and tools.
void check_latest(const fs::path& root, const std::vector<std::int64_t>& steps,
                  const std::function<void(const std::string&)>& warn) {
  const fs::path path = root / kLatestFileName;
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  try {
    std::string text = read_text_file(path, kMaxLatestBytes);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    const auto step = parse_step_dir_name(text);
    if (!step)
      warn(fmt::format("{}: {} is not a checkpoint name; ignoring it", path.string(),
                       json_string(text)));
    else if (!std::binary_search(steps.begin(), steps.end(), *step))
      warn(fmt::format("{}: names {}, which does not exist", path.string(), text));
  } catch (const CheckpointError& e) {
    warn(e.what());
  }
}

}  // namespace

std::uint32_t file_crc32c(const fs::path& path) {
  PosixFile file(path, PosixFile::Mode::read);
  std::vector<std::byte> buffer(kReadPieceBytes);
  std::uint32_t crc = 0;
  for (std::size_t n; (n = file.read_some(buffer)) > 0;)
    crc = crc32c(std::span(buffer).first(n), crc);
  return crc;
}

VerifyResult verify(const fs::path& dir) {
  try {
    return VerifyResult{verify_or_throw(dir), {}};
  } catch (const CheckpointError& e) {
    return VerifyResult{std::nullopt, e.what()};
  }
}

std::optional<FoundCheckpoint> find_latest_valid(
    const fs::path& root, const std::function<void(const std::string&)>& warn) {
  const std::vector<std::int64_t> steps = list_steps(root);
  check_latest(root, steps, warn);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const fs::path dir = step_dir(root, *it);
    VerifyResult result = verify(dir);
    if (result) return FoundCheckpoint{dir, std::move(*result.manifest)};
    warn(fmt::format("skipping checkpoint {}: {}", dir.string(), result.problem));
  }
  return std::nullopt;
}

}  // namespace lt::ckpt
