// Runs the `longtrain` binary of this build for the CLI tests: exit code and output.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace lt::test {

struct CliResult {
  int code;
  std::string output;  // stdout and stderr together
};

// `longtrain ARGS` (ARGS as a shell would split them), with stderr joined to stdout.
inline CliResult run_longtrain(const std::string& args) {
  const std::string cmd = std::string(LT_BINARY_DIR) + "/longtrain " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  while (pipe && fgets(buf.data(), static_cast<int>(buf.size()), pipe)) out += buf.data();
  const int status = pipe ? pclose(pipe) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace lt::test
