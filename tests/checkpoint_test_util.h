// Helpers shared by the checkpoint tests: a scratch directory, raw file access, byte views and
// an expectation on CheckpointError messages.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/error.h"

namespace lt::ckpt::test {

namespace fs = std::filesystem;

// A fresh directory under the test temp dir, unique per process and instance, removed at exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& stem) {
    static std::atomic<int> counter{0};
    path_ = fs::path(testing::TempDir()) / ("lt_ckpt_" + std::to_string(::getpid()) + "_" +
                                            std::to_string(counter++) + "_" + stem);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
// A view of a temporary would dangle once handed to a SafetensorsWriter.
std::span<const std::byte> bytes_of(std::string&&) = delete;

// Expects `f` to throw CheckpointError whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no CheckpointError; expected one mentioning '" << parts.front() << "'";
  } catch (const CheckpointError& e) {
    const std::string message = e.what();
    for (const std::string& part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "message lacks '" << part << "': " << message;
  }
}

}  // namespace lt::ckpt::test
