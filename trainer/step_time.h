// The step-time model the planner ranks layouts by: compute at the cluster's sustained rate plus
// the communication that cannot overlap with it, each collective costed with the alpha-beta
// model (a latency per message plus bytes over bandwidth) of the ring algorithms the
// communicator runs. The formulas and what they assume: docs/user-guide.md, "Planning a run".
#pragma once

#include "trainer/cluster.h"
#include "trainer/config.h"

namespace lt {

struct StepTime {
  double compute_s = 0.0;    // hardware FLOPs of the step / (ranks x sustained rate)
  double tp_s = 0.0;         // tensor-parallel collectives: all on the critical path
  double cp_s = 0.0;         // ring-attention transfers longer than the attention they hide behind
  double dp_s = 0.0;         // gradient reduction and ZeRO gathers not hidden behind compute
  double model_flops = 0.0;  // the whole step, all ranks (what MFU counts)
  double hardware_flops = 0.0;  // with recomputation

  double communication_s() const { return tp_s + cp_s + dp_s; }
  double total_s() const { return compute_s + communication_s(); }
};

// One optimizer step of `config`'s layout (parallel.tp/cp/dp/zero_stage, train.micro_batch,
// train.recompute, parallel.sequence_parallel) on `cluster`, one document per sequence.
// The layout must be valid (the config rules hold) and tp x cp x dp ranks must exist.
StepTime estimate_step_time(const Config& config, const ClusterSpec& cluster);

// Model FLOPs per second over what the ranks could do at their peak.
double model_flops_utilization(const StepTime& t, const Config& config, const ClusterSpec& cluster);

}  // namespace lt
