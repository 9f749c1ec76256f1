// The batch file that bench/pytorch_reference.py trains on, written by the training benchmarks
// (bench_train_cpu, bench_cuda_train) from the very batches longtrain trains on. Little-endian:
// b"LTBATCH1", int64 steps, batch, seq_len, vocab, int32 tokens[steps][batch][seq_len], int32
// targets[steps][batch][seq_len].
#pragma once

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/data.h"

namespace lt::bench {

// Writes the training batches of steps 0 .. steps-1 with `batch` samples each (step s: samples
// s * batch .. s * batch + batch - 1 of the train split, as the trainer draws them when
// micro_batch == global_batch == batch on one rank).
inline void dump_batches(const lt::DataSource& data, int steps, std::int64_t batch,
                         std::int64_t vocab, const std::string& path) {
  std::vector<std::int32_t> tokens, targets;
  for (int s = 0; s < steps; ++s) {
    const lt::Batch b =
        lt::make_batch(data, lt::Split::train, static_cast<std::uint64_t>(s * batch), batch);
    tokens.insert(tokens.end(), b.tokens.begin(), b.tokens.end());
    targets.insert(targets.end(), b.targets.begin(), b.targets.end());
  }
  std::ofstream out(path, std::ios::binary);
  out.write("LTBATCH1", 8);
  for (std::int64_t v : {static_cast<std::int64_t>(steps), batch, data.seq_len(), vocab}) {
    out.write(reinterpret_cast<const char*>(&v), sizeof v);
  }
  out.write(reinterpret_cast<const char*>(tokens.data()),
            static_cast<std::streamsize>(tokens.size() * sizeof(std::int32_t)));
  out.write(reinterpret_cast<const char*>(targets.data()),
            static_cast<std::streamsize>(targets.size() * sizeof(std::int32_t)));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace lt::bench
