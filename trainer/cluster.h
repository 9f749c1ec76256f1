// The machines a run is planned for: how many devices, how much memory each, how fast they
// compute and how fast they talk. The planner (trainer/planner.h) only reads this; every figure
// is a `longtrain plan` flag.
#pragma once

#include <cstdint>
#include <string>

namespace lt {

inline constexpr std::int64_t kGiB = std::int64_t{1} << 30;

// One kind of link: alpha (latency per message) and beta (bandwidth per device, one direction).
struct LinkSpec {
  double gb_per_s = 0.0;  // gigabytes (1e9 bytes) per second
  double latency_us = 0.0;
};

// The defaults describe an H100 SXM node: 80 GiB HBM, 8 GPUs joined by NVLink, one 400 Gb/s
// InfiniBand NIC per GPU. Bandwidths are what ring collectives sustain, not the link's peak
// (NVLink 4: 450 GB/s per direction; NDR: 50 GB/s), and the sustained bf16 rate is what large
// training GEMMs and flash attention reach (about 40% of the 989 TFLOP/s dense peak).
struct ClusterSpec {
  std::int64_t nodes = 1;
  std::int64_t devices_per_node = 8;
  std::int64_t memory_bytes = 80 * kGiB;  // per device
  double sustained_tflops = 400.0;        // per device, what the step-time model computes at
  double peak_tflops = 989.0;             // per device, what MFU divides by
  LinkSpec intra{.gb_per_s = 300.0, .latency_us = 3.0};  // inside a node
  LinkSpec inter{.gb_per_s = 40.0, .latency_us = 10.0};  // between nodes
  std::string device = "cuda";                           // train.device the memory model assumes

  std::int64_t world() const { return nodes * devices_per_node; }
};

// The CPU ranks of an MPI job (`parallel.mode: auto`): `world` ranks, `local` per node, each
// with `memory_bytes`. The rates are rough figures for one rank's share of a server CPU (fp32
// GEMMs through OpenBLAS; shared-memory MPI inside a node, TCP between nodes); they only rank
// layouts against each other, which is all the training run needs from them.
ClusterSpec cpu_cluster(std::int64_t world, std::int64_t local, std::int64_t memory_bytes);

// What one device is called in reports: "GPU" for cuda, "rank" for CPU ranks.
inline const char* device_noun(const ClusterSpec& c) {
  return c.device == "cuda" ? "GPU" : "rank";
}

// MemAvailable from /proc/meminfo, in bytes; throws lt::Error when it cannot be read.
std::int64_t host_available_memory();

// "1 node x 8 GPUs, 80.0 GiB each, 400 TFLOP/s sustained (989 peak), ..."
std::string describe_cluster(const ClusterSpec& c);

}  // namespace lt
