// A read-only memory map of a whole file. Token files can be far larger than RAM, so the data
// sources map them and let the page cache bring in only the windows that are sampled.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace lt {

class MappedFile {
 public:
  // Maps `path` read-only. Throws std::system_error carrying the errno of the failed call (a
  // directory reports EISDIR). An empty file maps to an empty span.
  explicit MappedFile(const std::string& path);
  ~MappedFile();

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void unmap() noexcept;

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace lt
