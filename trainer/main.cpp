#include <string>
#include <vector>

#include "trainer/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return lt::run_cli(args, &argc, &argv);
}
