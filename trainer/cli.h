// The `longtrain` command line: parses arguments and runs a command. Errors in user input
// (config, arguments) exit 2 with a message naming the problem; other failures exit 1.
#pragma once

#include <string>
#include <vector>

namespace lt {

int run_cli(const std::vector<std::string>& args, int* argc, char*** argv);

}  // namespace lt
