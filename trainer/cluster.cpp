#include "trainer/cluster.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "trainer/byte_size.h"

namespace lt {

ClusterSpec cpu_cluster(std::int64_t world, std::int64_t local, std::int64_t memory_bytes) {
  ClusterSpec c;
  // Ranks spread unevenly over nodes have no "node" the planner could keep tp inside: treat
  // every rank as its own node, which only makes the plan more cautious.
  const bool even = local > 0 && world % local == 0;
  c.devices_per_node = even ? local : 1;
  c.nodes = world / c.devices_per_node;
  c.memory_bytes = memory_bytes;
  c.sustained_tflops = 0.05;  // ~50 GFLOP/s per rank
  c.peak_tflops = 0.1;
  c.intra = {.gb_per_s = 5.0, .latency_us = 20.0};  // shared memory through the progress thread
  c.inter = {.gb_per_s = 1.0, .latency_us = 50.0};  // TCP
  c.device = "cpu";
  return c;
}

std::int64_t host_available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    std::int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  throw Error("cannot read MemAvailable from /proc/meminfo; set parallel.memory_per_rank_gib");
}

std::string describe_cluster(const ClusterSpec& c) {
  const char* unit = device_noun(c);
  return fmt::format(
      "{} node{} x {} {}{}, {} each, {:g} TFLOP/s sustained ({:g} peak); links: "
      "{:g} GB/s and {:g} us inside a node, {:g} GB/s and {:g} us between nodes",
      c.nodes, c.nodes == 1 ? "" : "s", c.devices_per_node, unit,
      c.devices_per_node == 1 ? "" : "s", format_size(c.memory_bytes), c.sustained_tflops,
      c.peak_tflops, c.intra.gb_per_s, c.intra.latency_us, c.inter.gb_per_s, c.inter.latency_us);
}

}  // namespace lt
