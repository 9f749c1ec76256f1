#include "trainer/cli.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "parallel/job_communicators.h"
#include "parallel/runtime.h"
#include "trainer/auto_layout.h"
#include "trainer/byte_size.h"
#include "trainer/config.h"
#include "trainer/format.h"
#include "trainer/generate_command.h"
#include "trainer/hf_error.h"
#include "trainer/hf_export.h"
#include "trainer/plan_flags.h"
#include "trainer/plan_report.h"
#include "trainer/planner.h"
#include "trainer/train_device.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

std::string usage() {
  return std::string(R"(usage: longtrain <command> [options]

commands:
  train --config FILE [--set section.key=value ...] [--memory-report] [--resume auto|DIR]
        train the model the config describes (under mpirun for several ranks);
        --memory-report prints bytes per memory category after the first step;
        --resume auto continues from the newest intact checkpoint in checkpoint.dir;
        with parallel.mode auto the planner chooses the layout for the job's ranks
  plan --config FILE [--set ...] [cluster options]
        choose tp, cp, dp, ZeRO stage, micro-batch and recompute for a GPU cluster:
        the layout, its memory per category, step time and MFU, and the runners-up;
        exit 3 when no layout fits (with the shortfall and what would help)
)") + plan_flags_usage() +
         R"(  params (--hf-config config.json | --config FILE [--set ...])
        print the exact parameter count without allocating the model
  export --checkpoint DIR --out HF_DIR [--dtype fp32|bf16] [--max-shard-size 5GB] [--force]
        write a checkpoint as a HuggingFace model directory: config.json and
        model.safetensors (shards and model.safetensors.index.json above the shard size);
        DIR is a step_N directory or a checkpoint root (its newest intact checkpoint);
        --dtype fp32 (default, lossless) or bf16; --force replaces a non-empty HF_DIR
)" + generate_usage() +
         R"(  config-reference
        print every config key with its type, default and meaning (Markdown)
  help  this text
)";
}

// Exit code of `plan` when no layout fits.
constexpr int kNoPlanFits = 3;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string command;
  std::optional<std::string> config;
  std::optional<std::string> hf_config;
  std::vector<std::string> overrides;
  std::vector<std::pair<std::string, std::string>> plan_flags;      // plan: (--flag, value)
  std::vector<std::pair<std::string, std::string>> export_flags;    // export: (--flag, value)
  std::vector<std::pair<std::string, std::string>> generate_flags;  // generate: (--flag, value)
  bool force = false;                                               // export --force
};

bool is_export_flag(const std::string& flag) {
  return flag == "--checkpoint" || flag == "--out" || flag == "--dtype" ||
         flag == "--max-shard-size";
}

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
    } else if (a == "--resume" && o.command == "train") {
      o.overrides.push_back("checkpoint.resume=" + value());
    } else if (a == "--memory-report" && o.command == "train") {
      o.overrides.push_back("logging.memory_report=true");
    } else if (o.command == "plan" && is_plan_flag(a)) {
      o.plan_flags.emplace_back(a, value());
    } else if (o.command == "export" && is_export_flag(a)) {
      o.export_flags.emplace_back(a, value());
    } else if (o.command == "generate" && is_generate_flag(a)) {
      o.generate_flags.emplace_back(a, value());
    } else if (o.command == "export" && a == "--force") {
      o.force = true;
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

int command_plan(const Options& o) {
  if (!o.config) throw UsageError("plan needs --config FILE");
  const Config config = load_config(*o.config, o.overrides);
  PlanSettings settings;
  for (const auto& [flag, value] : o.plan_flags) {
    try {
      apply_plan_flag(settings, flag, value);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  const Plan plan = plan_layouts(config, settings.cluster, settings.margin);
  if (!plan.fits()) {
    fmt::print("{}", format_no_fit(config, plan, levers_for(config, plan)));
    return kNoPlanFits;
  }
  fmt::print("{}", format_plan(config, plan, settings.top));
  return 0;
}

ckpt::TensorDtype export_dtype(const std::string& text) {
  if (text == "fp32" || text == "f32" || text == "float32") return ckpt::TensorDtype::f32;
  if (text == "bf16" || text == "bfloat16") return ckpt::TensorDtype::bf16;
  throw UsageError("invalid value '" + text + "' for --dtype: expected fp32 or bf16");
}

std::uint64_t shard_size(const std::string& text) {
  const std::optional<std::int64_t> bytes = parse_byte_size(text);
  if (!bytes || *bytes < 1)
    throw UsageError("invalid value '" + text + "' for --max-shard-size: expected " +
                     kByteSizeHelp);
  return static_cast<std::uint64_t>(*bytes);
}

int command_export(const Options& o) {
  std::optional<std::string> checkpoint, out;
  ExportOptions options;
  options.force = o.force;
  for (const auto& [flag, value] : o.export_flags) {
    if (flag == "--checkpoint") checkpoint = value;
    if (flag == "--out") out = value;
    if (flag == "--dtype") options.dtype = export_dtype(value);
    if (flag == "--max-shard-size") options.max_shard_bytes = shard_size(value);
  }
  if (!checkpoint || !out) throw UsageError("export needs --checkpoint DIR and --out HF_DIR");
  const ExportSummary s = export_hf(*checkpoint, *out, options, [](const std::string& warning) {
    fmt::print(stderr, "warning: {}\n", warning);
  });
  fmt::print("exported {} (step {}): {} tensors, {} of {} weights\n", s.checkpoint.string(), s.step,
             s.tensors, format_size(static_cast<std::int64_t>(s.tensor_bytes)),
             ckpt::dtype_name(options.dtype));
  fmt::print("wrote {}: {}\n", *out, fmt::join(s.files, ", "));
  return 0;
}

int command_generate(const Options& o) {
  try {
    return run_generate(o.generate_flags);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

// The smallest of each rank's `values` (the same on every rank), so that every rank plans
// from the same figures.
std::vector<double> minimum_over_ranks(std::vector<double> values, const ProcessInfo& process) {
  if (process.world_size == 1) return values;
  std::vector<int> ranks(static_cast<std::size_t>(process.world_size));
  std::iota(ranks.begin(), ranks.end(), 0);
  const std::unique_ptr<Communicator> world = process.communicators("planner", ranks);
  Tensor t = Tensor::empty(Shape{static_cast<std::int64_t>(values.size())}, DType::f64,
                           MemCategory::communication);
  std::transform(values.begin(), values.end(), t.data<double>(), [](double v) { return -v; });
  world->all_reduce(t, ReduceOp::max);
  std::transform(t.data<double>(), t.data<double>() + values.size(), values.begin(),
                 [](double v) { return -v; });
  return values;
}

// parallel.mode auto: the planner's layout for this job's ranks, logged by rank 0.
Config resolve_layout(const Config& config, const ProcessInfo& process) {
  const std::vector<double> agreed =
      minimum_over_ranks({static_cast<double>(auto_memory_per_rank(config, process.local_size)),
                          static_cast<double>(process.local_size)},
                         process);
  AutoLayout chosen =
      resolve_auto_layout(config, process.world_size, static_cast<std::int64_t>(agreed[1]),
                          static_cast<std::int64_t>(agreed[0]));
  if (process.rank == 0) {
    fmt::print("{}\n", chosen.message);
    std::fflush(stdout);  // before the trainer's log lines, which go through spdlog
  }
  return std::move(chosen.config);
}

int command_train(const Options& o, int* argc, char*** argv) {
  if (!o.config) throw UsageError("train needs --config FILE");
  Config config = load_config(*o.config, o.overrides);
  DistributedRuntime runtime(argc, argv);
  ProcessInfo process{runtime.rank(), runtime.world_size(), runtime.local_size(), {}};
  // One rank per GPU: the device is current before anything is allocated or any NCCL
  // communicator binds to it.
  const Device device = resolve_train_device(config, runtime.world_size(), runtime.local_size());
  if (device == Device::cuda) runtime.select_local_gpu();
  if (runtime.world_size() > 1) {
    process.communicators = make_job_communicators(device, config.parallel.timeout_s);
  }
  if (config.parallel.mode == "auto") config = resolve_layout(config, process);
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
    if (o.command == "plan") return command_plan(o);
    if (o.command == "export") return command_export(o);
    if (o.command == "generate") return command_generate(o);
    if (o.command == "config-reference") {
      fmt::print("{}", config_reference_markdown());
      return 0;
    }
    if (o.command == "help" || o.command == "--help" || o.command == "-h") {
      fmt::print("{}", usage());
      return 0;
    }
    throw UsageError("unknown command '" + o.command + "'");
  } catch (const UsageError& e) {
    fmt::print(stderr, "error: {}\n\n{}", e.what(), usage());
    return 2;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const HfError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}

}  // namespace lt
