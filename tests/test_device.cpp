// Where tensors go: the default device and its scope, and how the trainer resolves
// train.device on the machine it runs on (this one may have no GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/device_scope.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "parallel/nccl_communicator.h"
#include "trainer/config.h"
#include "trainer/train_device.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

TEST(DeviceScope, SetsAndRestoresTheDefaultDevice) {
  EXPECT_EQ(default_device(), Device::cpu);
  EXPECT_EQ(Tensor::empty(Shape{4}, DType::f32, MemCategory::workspace).device(), Device::cpu);
  {
    const DeviceScope outer(Device::cuda);
    EXPECT_EQ(default_device(), Device::cuda);
    {
      const DeviceScope inner(Device::cpu);
      EXPECT_EQ(default_device(), Device::cpu);
      // A named device wins over the scope.
      EXPECT_EQ(Tensor::empty(Shape{4}, DType::f32, MemCategory::workspace, Device::cpu).device(),
                Device::cpu);
    }
    EXPECT_EQ(default_device(), Device::cuda);
  }
  EXPECT_EQ(default_device(), Device::cpu);
}

const char* kConfig = R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 2, global_batch: 2, micro_batch: 1, eval_every: 0, threads: 1}
logging: {dir: "", level: warn}
)";

TEST(TrainDevice, CudaNeedsAVisibleDevice) {
  const Config cuda = parse_config(kConfig, "device.yaml", {"train.device=cuda"});
  if (cuda_device_count() == 0) {
    try {
      Trainer trainer(cuda, ProcessInfo{});
      FAIL() << "train.device cuda without a device was accepted";
    } catch (const ConfigError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("device.yaml: train.device is 'cuda' but"), std::string::npos)
          << message;
      EXPECT_NE(
          message.find(cuda_backend_built() ? "no CUDA device is visible" : "only the CPU backend"),
          std::string::npos)
          << message;
    }
  } else {
    Trainer trainer(cuda, ProcessInfo{});
    EXPECT_EQ(trainer.run().size(), 2u);
  }
}

std::string device_error(const Config& config, int world_size, int local_size) {
  try {
    resolve_train_device(config, world_size, local_size);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Several ranks on cuda: one GPU per rank of the node, and NCCL for a job of several ranks.
TEST(TrainDevice, CudaNeedsAGpuPerLocalRankAndNcclForSeveralRanks) {
  const Config cuda = parse_config(kConfig, "device.yaml", {"train.device=cuda"});
  const Config automatic = parse_config(kConfig, "device.yaml", {"train.device=auto"});
  const Config cpu = parse_config(kConfig, "device.yaml", {"train.device=cpu"});
  EXPECT_EQ(resolve_train_device(cpu, 8, 8), Device::cpu);
  const int devices = cuda_device_count();
  if (devices == 0) {
    EXPECT_NE(device_error(cuda, 4, 4).find("device.yaml: train.device is 'cuda' but"),
              std::string::npos);
    EXPECT_EQ(resolve_train_device(automatic, 4, 4), Device::cpu);
    return;
  }
  // More ranks on this node than GPUs.
  const std::string crowded = device_error(cuda, devices + 1, devices + 1);
  EXPECT_NE(crowded.find("one rank per GPU"), std::string::npos) << crowded;
  EXPECT_EQ(resolve_train_device(automatic, devices + 1, devices + 1), Device::cpu);
  // As many ranks as GPUs: cuda when the build has NCCL (or for a single rank).
  const Device expected = devices == 1 || have_nccl() ? Device::cuda : Device::cpu;
  EXPECT_EQ(resolve_train_device(automatic, devices, devices), expected);
  if (devices > 1 && !have_nccl()) {
    EXPECT_NE(device_error(cuda, devices, devices).find("NCCL"), std::string::npos);
  }
  // A job spread over nodes: only this node's ranks share its GPUs.
  EXPECT_EQ(resolve_train_device(cpu, 2 * devices, devices), Device::cpu);
}

TEST(TrainDevice, AutoTrainsOnWhatThisMachineHas) {
  Trainer trainer(parse_config(kConfig, "device.yaml", {"train.device=auto"}), ProcessInfo{});
  const auto results = trainer.run();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(std::isfinite(results.back().loss));
  // The trainer's device applies inside its methods only.
  EXPECT_EQ(default_device(), Device::cpu);
}

}  // namespace
}  // namespace lt
