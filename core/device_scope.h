// The device a tensor is created on when its creator names none: the CPU, unless a DeviceScope
// on this thread says otherwise. The trainer opens one for `train.device: cuda`, so the layers
// allocate their parameters and activations on the GPU without knowing about devices; code that
// needs host memory (staging, host-side statistics) names Device::cpu.
#pragma once

#include "core/device.h"

namespace lt {

Device default_device();

// Sets this thread's default device for its lifetime, then restores the previous one.
class DeviceScope {
 public:
  explicit DeviceScope(Device device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  Device previous_;
};

}  // namespace lt
