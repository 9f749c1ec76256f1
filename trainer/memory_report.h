// The --memory-report table: bytes per memory category on this rank after a step (current, and
// the peak within the step), the memory model's prediction of that peak, and the largest value
// over all ranks when the job has several.
#pragma once

#include <string>

#include "core/memory.h"
#include "trainer/memory_model.h"

namespace lt {

// `mine`: this rank's snapshot; `most`: per-category maxima over all ranks (current, peak;
// the same as `mine` in a one-rank job). `ranks` > 1 adds the "max over ranks" columns.
std::string format_memory_report(const MemorySnapshot& mine, const MemorySnapshot& most,
                                 const MemoryPrediction& predicted, int rank, int ranks);

}  // namespace lt
