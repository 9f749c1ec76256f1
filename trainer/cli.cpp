#include "trainer/cli.h"

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <optional>

#include "parallel/mpi_communicator.h"
#include "parallel/runtime.h"
#include "trainer/config.h"
#include "trainer/format.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

constexpr const char* kUsage = R"(usage: longtrain <command> [options]

commands:
  train --config FILE [--set section.key=value ...] [--memory-report]
        train the model the config describes (under mpirun for several ranks);
        --memory-report prints bytes per memory category after the first step
  params (--hf-config config.json | --config FILE [--set ...])
        print the exact parameter count without allocating the model
  config-reference
        print every config key with its type, default and meaning (Markdown)
  help  this text
)";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string command;
  std::optional<std::string> config;
  std::optional<std::string> hf_config;
  std::vector<std::string> overrides;
};

Options parse_args(const std::vector<std::string>& args) {
  Options o;
  if (args.empty()) throw UsageError("no command given");
  o.command = args[0];
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError("option " + a + " needs a value");
      return args[++i];
    };
    if (a == "--config") {
      o.config = value();
    } else if (a == "--hf-config") {
      o.hf_config = value();
    } else if (a == "--set") {
      o.overrides.push_back(value());
    } else if (a.rfind("--set=", 0) == 0) {
      o.overrides.push_back(a.substr(6));
    } else if (a == "--memory-report" && o.command == "train") {
      o.overrides.push_back("logging.memory_report=true");
    } else {
      throw UsageError("unknown option '" + a + "' for '" + o.command + "'");
    }
  }
  return o;
}

int command_params(const Options& o) {
  ModelConfig m;
  if (o.hf_config) {
    m = load_hf_model_config(*o.hf_config);
  } else if (o.config) {
    m = load_config(*o.config, o.overrides).model;
  } else {
    throw UsageError("params needs --hf-config FILE or --config FILE");
  }
  const std::int64_t total = count_parameters(m);
  fmt::print("parameters: {} ({:.3f} B)\n", group_thousands(total),
             static_cast<double>(total) / 1e9);
  fmt::print("  embedding {}, per layer {} x {} layers, final norm {}, lm head {}\n",
             m.vocab * m.dim, count_block_parameters(m), m.layers, m.dim,
             m.tie_embeddings ? std::string("tied") : std::to_string(m.vocab * m.dim));
  return 0;
}

int command_train(const Options& o, int* argc, char*** argv) {
  if (!o.config) throw UsageError("train needs --config FILE");
  Config config = load_config(*o.config, o.overrides);
  DistributedRuntime runtime(argc, argv);
  ProcessInfo process{runtime.rank(), runtime.world_size(), runtime.local_size(), {}};
  if (runtime.world_size() > 1) {
    const double timeout = config.parallel.timeout_s;
    process.communicators = [timeout](const std::string& name, const std::vector<int>& ranks) {
      return make_mpi_communicator(name, ranks, timeout);
    };
  }
  Trainer trainer(std::move(config), process);
  trainer.run();
  return 0;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, int* argc, char*** argv) {
  try {
    const Options o = parse_args(args);
    if (o.command == "train") return command_train(o, argc, argv);
    if (o.command == "params") return command_params(o);
    if (o.command == "config-reference") {
      fmt::print("{}", config_reference_markdown());
      return 0;
    }
    if (o.command == "help" || o.command == "--help" || o.command == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    throw UsageError("unknown command '" + o.command + "'");
  } catch (const UsageError& e) {
    fmt::print(stderr, "error: {}\n\n{}", e.what(), kUsage);
    return 2;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}

}  // namespace lt
