#pragma once

#include <string_view>

namespace lt {

enum class Device { cpu, cuda };

constexpr std::string_view device_name(Device d) {
  return d == Device::cpu ? "cpu" : "cuda";
}

}  // namespace lt
