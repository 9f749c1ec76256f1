#include "checkpoint/directory.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <system_error>

#include "checkpoint/error.h"
#include "checkpoint/posix_file.h"

namespace lt::ckpt {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kStepPrefix = "step_";
constexpr std::string_view kTmpSuffix = ".tmp";

[[noreturn]] void fail(std::string_view what, const fs::path& path, const std::error_code& ec) {
  throw CheckpointError(fmt::format("{}: {}: {}", path.string(), what, ec.message()));
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) fail("cannot remove", path, ec);
}

void rename_path(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) fail(fmt::format("cannot rename to {}", to.string()), from, ec);
}

// The entries of `root` (none when it does not exist), with errors as CheckpointError.
std::vector<fs::path> list_dir(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec == std::errc::no_such_file_or_directory) return out;
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) out.push_back(it->path());
  if (ec) fail("cannot list", root, ec);
  return out;
}

// The step of a "step_N.tmp" name, or nothing.
std::optional<std::int64_t> parse_tmp_dir_name(std::string_view name) {
  if (!name.ends_with(kTmpSuffix)) return std::nullopt;
  return parse_step_dir_name(name.substr(0, name.size() - kTmpSuffix.size()));
}

void check_files_present(const fs::path& dir, const Manifest& manifest) {
  for (const FileRecord& f : manifest.files) {
    std::error_code ec;
    const fs::path path = dir / f.name;
    const std::uintmax_t size = fs::file_size(path, ec);
    if (ec) fail("cannot commit the checkpoint, a listed file is unreadable", path, ec);
    if (size != f.bytes)
      throw CheckpointError(fmt::format(
          "{}: cannot commit the checkpoint: the file has {} bytes, the manifest lists {}",
          path.string(), size, f.bytes));
  }
}

// Moves the finished `tmp` to `final`. A `final` already there (a damaged checkpoint of the same
// step) is swapped out atomically with renameat2 where the file system supports it, so that a
// step_N directory exists at every instant; elsewhere it is removed first.
void publish(const fs::path& tmp, const fs::path& final) {
  std::error_code ec;
  if (!fs::exists(final, ec)) {
    rename_path(tmp, final);
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_EXCHANGE) == 0) {
    remove_tree(tmp);  // now the old one
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    fail(fmt::format("cannot exchange with {}", final.string()), tmp,
         std::error_code(errno, std::generic_category()));
  remove_tree(final);
  rename_path(tmp, final);
}

void write_latest(const fs::path& root, std::int64_t step) {
  const fs::path next = root / (std::string(kLatestFileName) + ".tmp");
  write_file_durably(next, step_dir_name(step) + "\n");
  rename_path(next, root / kLatestFileName);
  fsync_dir(root);
}

}  // namespace

std::string step_dir_name(std::int64_t step) {
  if (step < 0) throw CheckpointError(fmt::format("checkpoint step {} is negative", step));
  return fmt::format("{}{:08d}", kStepPrefix, step);
}

std::optional<std::int64_t> parse_step_dir_name(std::string_view name) {
  if (!name.starts_with(kStepPrefix)) return std::nullopt;
  const std::string_view digits = name.substr(kStepPrefix.size());
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || end != digits.data() + digits.size() || step < 0) return std::nullopt;
  // Only the spelling step_dir_name produces: no sign, no missing or extra leading zeros.
  if (step_dir_name(step) != name) return std::nullopt;
  return step;
}

std::string rank_file_name(std::int64_t rank) {
  return fmt::format("rank_{:05d}.safetensors", rank);
}

fs::path step_dir(const fs::path& root, std::int64_t step) {
  return root / step_dir_name(step);
}

fs::path tmp_dir(const fs::path& root, std::int64_t step) {
  return root / (step_dir_name(step) + std::string(kTmpSuffix));
}

fs::path file_path(const fs::path& root, std::int64_t step, std::string_view file_name) {
  if (!is_valid_file_name(file_name))
    throw CheckpointError(
        fmt::format("checkpoint file name \"{}\" is not a plain file name", file_name));
  return tmp_dir(root, step) / file_name;
}

std::vector<std::int64_t> list_steps(const fs::path& root) {
  std::vector<std::int64_t> steps;
  for (const fs::path& path : list_dir(root)) {
    const auto step = parse_step_dir_name(path.filename().string());
    std::error_code ec;
    if (step && fs::is_directory(path, ec)) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

fs::path begin_save(const fs::path& root, std::int64_t step) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail("cannot create the checkpoint directory", root, ec);
  const fs::path tmp = tmp_dir(root, step);
  remove_tree(tmp);
  fs::create_directory(tmp, ec);
  if (ec) fail("cannot create", tmp, ec);
  return tmp;
}

void commit_save(const fs::path& root, std::int64_t step, const Manifest& manifest) {
  if (manifest.step != step)
    throw CheckpointError(
        fmt::format("commit of {}: the manifest says step {}", step_dir_name(step), manifest.step));
  const fs::path tmp = tmp_dir(root, step);
  check_files_present(tmp, manifest);
  write_file_durably(tmp / kManifestFileName, manifest_to_json(manifest));
  fsync_dir(tmp);
  publish(tmp, step_dir(root, step));
  fsync_dir(root);
  write_latest(root, step);
}

std::vector<fs::path> prune(const fs::path& root, int keep) {
  if (keep < 1)
    throw CheckpointError(fmt::format("{}: prune must keep at least 1 checkpoint, asked for {}",
                                      root.string(), keep));
  std::vector<std::int64_t> complete;
  for (const std::int64_t step : list_steps(root)) {
    std::error_code ec;
    if (fs::is_regular_file(step_dir(root, step) / kManifestFileName, ec)) complete.push_back(step);
  }
  std::vector<fs::path> removed;
  if (complete.empty()) return removed;
  const std::size_t excess = complete.size() > static_cast<std::size_t>(keep)
                                 ? complete.size() - static_cast<std::size_t>(keep)
                                 : 0;
  for (std::size_t i = 0; i < excess; ++i) removed.push_back(step_dir(root, complete[i]));
  for (const fs::path& path : list_dir(root)) {
    const auto step = parse_tmp_dir_name(path.filename().string());
    if (step && *step < complete.back()) removed.push_back(path);
  }
  for (const fs::path& path : removed) remove_tree(path);
  fsync_dir(root);
  return removed;
}

}  // namespace lt::ckpt
