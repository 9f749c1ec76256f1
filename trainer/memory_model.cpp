#include "trainer/memory_model.h"

#include "layers/model_config.h"
#include "trainer/memory_timeline.h"
#include "trainer/step_memory_walk.h"

namespace lt {

MemoryPrediction predict_memory(const Config& config) {
  MemoryTimeline timeline;
  walk_training_step(config, timeline);
  MemoryPrediction p;
  for (std::size_t c = 0; c < kNumMemCategories; ++c) {
    p.peak[c] = timeline.peak(static_cast<MemCategory>(c));
  }
  p.total = timeline.peak_total();
  const ModelConfig local = local_model_config(
      config.model, TensorParallelShard{static_cast<int>(config.parallel.tp), 0});
  p.parameters_per_rank = local.vocab * local.dim * (config.model.tie_embeddings ? 1 : 2) +
                          config.model.layers * count_block_parameters(local) + local.dim;
  return p;
}

}  // namespace lt
