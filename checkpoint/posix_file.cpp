#include "checkpoint/posix_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "checkpoint/error.h"

namespace lt::ckpt {
namespace {

// One write or read call moves at most this much (Linux caps a call near 2 GiB anyway).
constexpr std::size_t kMaxCallBytes = std::size_t{1} << 30;

int open_flags(PosixFile::Mode mode) {
  switch (mode) {
    case PosixFile::Mode::read:
      return O_RDONLY | O_CLOEXEC;
    case PosixFile::Mode::write:
      return O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    case PosixFile::Mode::directory:
      return O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  }
  return O_RDONLY;
}

}  // namespace

PosixFile::PosixFile(std::filesystem::path path, Mode mode) : path_(std::move(path)) {
  do {
    fd_ = ::open(path_.c_str(), open_flags(mode), 0644);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) fail(mode == Mode::write ? "cannot create" : "cannot open");
}

PosixFile::~PosixFile() {
  release();
}

PosixFile::PosixFile(PosixFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

PosixFile& PosixFile::operator=(PosixFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void PosixFile::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void PosixFile::fail(std::string_view call) const {
  const std::string reason = std::error_code(errno, std::generic_category()).message();
  throw CheckpointError(fmt::format("{}: {}: {}", path_.string(), call, reason));
}

std::uint64_t PosixFile::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("cannot stat");
  return static_cast<std::uint64_t>(st.st_size);
}

void PosixFile::write_all(std::span<const std::byte> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), std::min(data.size(), kMaxCallBytes));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write failed");
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

void PosixFile::read_at(std::uint64_t offset, std::span<std::byte> out) const {
  while (!out.empty()) {
    const ssize_t n =
        ::pread(fd_, out.data(), std::min(out.size(), kMaxCallBytes), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read failed");
    if (n == 0)
      throw CheckpointError(fmt::format("{}: unexpected end of file at byte {} ({} more expected)",
                                        path_.string(), offset, out.size()));
    out = out.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

std::size_t PosixFile::read_some(std::span<std::byte> out) {
  for (;;) {
    const ssize_t n = ::read(fd_, out.data(), std::min(out.size(), kMaxCallBytes));
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) fail("read failed");
  }
}

void PosixFile::sync() {
  if (::fsync(fd_) != 0) fail("fsync failed");
}

void PosixFile::close() {
  const int fd = std::exchange(fd_, -1);
  // Linux releases the descriptor even when close reports an error, so it is never retried.
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) fail("close failed");
}

void fsync_file(const std::filesystem::path& path) {
  PosixFile file(path, PosixFile::Mode::read);
  file.sync();
  file.close();
}

void fsync_dir(const std::filesystem::path& path) {
  PosixFile dir(path, PosixFile::Mode::directory);
  dir.sync();
  dir.close();
}

void write_file_durably(const std::filesystem::path& path, std::string_view content) {
  PosixFile file(path, PosixFile::Mode::write);
  file.write_all(std::as_bytes(std::span(content.data(), content.size())));
  file.sync();
  file.close();
}

std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes) {
  PosixFile file(path, PosixFile::Mode::read);
  const std::uint64_t size = file.size();
  if (size > max_bytes)
    throw CheckpointError(fmt::format("{}: {} bytes, more than the limit of {} bytes",
                                      path.string(), size, max_bytes));
  std::string text(size, '\0');
  file.read_at(0, std::as_writable_bytes(std::span(text.data(), text.size())));
  return text;
}

}  // namespace lt::ckpt
