// `longtrain generate`: its flags, and the command itself. Split from the CLI so that the
// flag handling and the task-sample mode are testable on their own.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lt {

// Usage lines for the CLI's help text.
std::string generate_usage();

// Whether `flag` is one of generate's flags that take a value.
bool is_generate_flag(std::string_view flag);

// Runs `generate` with its (--flag, value) pairs, printing to stdout (messages to stderr).
// Throws std::invalid_argument naming a bad or missing flag, HfError / ConfigError for a model
// that cannot be loaded. Returns the exit code.
int run_generate(const std::vector<std::pair<std::string, std::string>>& flags);

}  // namespace lt
