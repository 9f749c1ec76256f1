// A POSIX file descriptor with checked I/O (internal to the checkpoint module, and used by the
// trainer only through the functions at the bottom). Checkpoints need what iostreams do not
// give: fsync of files and directories, pread at 64-bit offsets from several threads, and errors
// that name the file and the failed call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace lt::ckpt {

class PosixFile {
 public:
  enum class Mode {
    read,       // an existing file, read-only
    write,      // created or truncated, write-only
    directory,  // an existing directory, opened only to fsync it
  };

  // Throws CheckpointError naming the path and the reason (errno).
  PosixFile(std::filesystem::path path, Mode mode);
  ~PosixFile();  // closes, ignoring errors: call close() to see them
  PosixFile(PosixFile&& other) noexcept;
  PosixFile& operator=(PosixFile&& other) noexcept;
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::uint64_t size() const;

  void write_all(std::span<const std::byte> data);
  // Exactly out.size() bytes at `offset`; a file ending sooner is an error.
  void read_at(std::uint64_t offset, std::span<std::byte> out) const;
  // Up to out.size() bytes from the current position; 0 at the end of the file.
  std::size_t read_some(std::span<std::byte> out);
  void sync();
  void close();

 private:
  [[noreturn]] void fail(std::string_view call) const;  // throws with errno's message
  void release() noexcept;

  std::filesystem::path path_;
  int fd_ = -1;
};

// fsync of a file or a directory (a directory's entries become durable: renames, new files).
void fsync_file(const std::filesystem::path& path);
void fsync_dir(const std::filesystem::path& path);

// Creates or truncates `path`, writes `content` and fsyncs it.
void write_file_durably(const std::filesystem::path& path, std::string_view content);

// The whole file as text; a file larger than `max_bytes` is an error naming the limit.
std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes);

}  // namespace lt::ckpt
