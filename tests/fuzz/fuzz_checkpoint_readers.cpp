// libFuzzer target for the readers of untrusted checkpoint bytes: the safetensors header (through
// its in-memory entry point, parse_safetensors_header) and the manifest parser. Each input is fed
// three ways: as a whole safetensors file, as the JSON header of a file with an empty data
// section (so that mutations reach the JSON reader without having to find a valid length first),
// and as a manifest. The module's CheckpointError is the only expected outcome of bad input;
// anything else (another exception, a sanitizer report, a broken invariant below) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/error.h"
#include "checkpoint/manifest.h"
#include "checkpoint/safetensors_header.h"

namespace {

using lt::ckpt::CheckpointError;

// What the reader promises about an accepted header: every entry inside the file, the entries
// tiling the data section in order, each findable by its name.
void check_header(const lt::ckpt::SafetensorsHeader& h, std::uint64_t file_size) {
  std::uint64_t end = 0;
  for (const lt::ckpt::TensorEntry& e : h.tensors) {
    if (e.begin != end || e.end < e.begin || e.end > file_size - h.data_start) __builtin_trap();
    if (h.find(e.name) != &e) __builtin_trap();
    end = e.end;
  }
  if (h.data_start + end != file_size) __builtin_trap();
}

void fuzz_safetensors(std::span<const std::byte> file) {
  try {
    check_header(lt::ckpt::parse_safetensors_header(file, file.size(), "fuzz.safetensors"),
                 file.size());
  } catch (const CheckpointError&) {
  }
}

void fuzz_header_json(std::span<const std::byte> json) {
  std::vector<std::byte> file(8 + json.size());
  for (std::size_t i = 0; i < 8; ++i)
    file[i] = static_cast<std::byte>((static_cast<std::uint64_t>(json.size()) >> (8 * i)) & 0xFF);
  if (!json.empty()) std::memcpy(file.data() + 8, json.data(), json.size());
  fuzz_safetensors(file);
}

// An accepted manifest writes back (without error) to JSON that parses to the same JSON.
void fuzz_manifest(std::string_view text) {
  lt::ckpt::Manifest m;
  try {
    m = lt::ckpt::parse_manifest(text, "fuzz/manifest.json");
  } catch (const CheckpointError&) {
    return;
  }
  const std::string json = lt::ckpt::manifest_to_json(m);
  if (lt::ckpt::manifest_to_json(lt::ckpt::parse_manifest(json, "fuzz/rewritten.json")) != json)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes = std::as_bytes(std::span(data, size));
  fuzz_safetensors(bytes);
  fuzz_header_json(bytes);
  fuzz_manifest(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
